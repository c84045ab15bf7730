"""`promote`: candidate -> (bootstrap) -> offline gates -> staging -> shadow -> rollout -> production, for any family.

`promote_intent` is the same pipeline under the intent family's name (its own MLflow experiment).
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import PromoteConfig
from steps import advance_rollout, bootstrap_production, evaluate_shadow, gate_candidate, select_candidate

#: run.py exit code when a gate failed and nothing was promoted or advanced.
GATE_FAILED = 5


def promotion_steps(config: PromoteConfig) -> None:
    """The promotion life cycle's steps; only the family's hooks and the config differ between families."""
    candidate = select_candidate(config.registered_model, config.family, config.candidate_version)
    production = bootstrap_production(candidate, family=config.family, enabled=config.bootstrap)
    offline = gate_candidate(candidate, production, family=config.family, gates=config.offline_gate_set())
    shadow = evaluate_shadow(candidate, offline, config=config)
    advance_rollout(candidate, shadow, config=config)


@pipeline
def promote(config: PromoteConfig) -> None:
    """Gate the newest (or the given) version of a family's model and walk it through the registry stages."""
    promotion_steps(config)


def run_outputs(run: Any) -> dict[str, Any]:
    step_outputs = {"select_candidate": "candidate", "bootstrap_production": "production_before",
                    "gate_candidate": "offline_gates", "evaluate_shadow": "shadow_report",
                    "advance_rollout": "promotion"}
    return {output: run.steps[step].outputs[output][0].load() for step, output in step_outputs.items()}


def exit_code(run: Any) -> int:
    """0 when the candidate was staged, advanced or promoted (or already in production); 5 when a gate failed."""
    outputs = run_outputs(run)
    offline, shadow = outputs["offline_gates"], outputs["shadow_report"]
    if offline.get("skipped"):
        return 0
    return 0 if offline["passed"] and shadow.get("passed") else GATE_FAILED


def summary(run: Any) -> list[Any]:
    """Gate tables (offline, shadow), the shadow event, and the registry's stages after the run."""
    from pipelines._promotion_tables import gate_table, stage_table

    outputs = run_outputs(run)
    candidate, offline = outputs["candidate"], outputs["offline_gates"]
    shadow, promotion = outputs["shadow_report"], outputs["promotion"]
    name, version = candidate["name"], candidate["version"]
    lines: list[Any] = []
    if outputs["production_before"].get("bootstrapped"):
        lines.append(f"bootstrap: {outputs['production_before']['move']}")
    if offline.get("skipped"):
        lines.append(f"version {version}: {offline['skipped']}")
    else:
        lines.append(gate_table(f"Offline gates, {name} version {version}", offline))
        lines.append(f"offline gates: {'PASS' if offline['passed'] else 'FAIL'} ({offline['reason']})"
                     + (f"; {offline['move']}" if offline.get("staged") else f"; version {version} stays where it was"))
    if shadow.get("skipped") is None:
        lines.append(gate_table(f"Shadow gates: version {version} vs production version {shadow['production_version']} "
                                f"on {shadow['traffic']}", shadow))
        lines.append(f"event: {shadow['event']}")
        rows = int(shadow["metrics"].get("disagreements", 0))
        lines.append(f"disagreement bucket for human review ({rows} rows): {shadow['disagreements_csv']}")
    elif not offline.get("skipped") and offline.get("staged"):
        lines.append(f"shadow: {shadow['skipped']}")
    if promotion.get("rollout") is not None:
        lines.append(f"rollout: {promotion['rollout_note']} (now {promotion['rollout']})"
                     + (f"; PROMOTED {promotion['move']}" if promotion["promoted"] else ""))
    lines.extend(promotion.get("flags", []))
    lines.append(stage_table(name, promotion["stages"]))
    return lines
