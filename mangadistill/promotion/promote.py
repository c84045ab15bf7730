"""The promotion life cycle against the MLflow registry: pick a candidate, gate it, stage it, shadow it,
roll it out, and watch production. The steps of `promote_intent` / `monitor_intent` call these.

Decisions come from the pure functions in `gates`, `rollout` and `rollback`; this module only gathers
their inputs from the registry and applies their outcome through `mangadistill.registry.stages`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from mangadistill.config import MonitorIntentConfig, PromoteIntentConfig, ShadowConfig
from mangadistill.errors import UserError
from mangadistill.evaluation.latency import latency_summary
from mangadistill.promotion import rollout
from mangadistill.promotion.gates import GateDecision, evaluate_gates
from mangadistill.promotion.rollback import TriggerDecision, evaluate_triggers
from mangadistill.promotion.shadow import compare, quality, replay, shadow_event
from mangadistill.promotion.traffic import TrafficLog, load_traffic
from mangadistill.registry import stages
from mangadistill.registry.loading import load_version_classifier

#: Version tags that rollback triggers compare against (the approved benchmark); needed for observability.
MONITORING_BASELINE_TAGS = ("gate_rare_class_recall", "gate_refusal_precision", "gate_latency_p95_ms")


class CandidateError(UserError):
    """No version to promote, or the requested one does not exist."""

    exit_code = 1


def select_candidate(client: MlflowClient, name: str, version: int | None = None) -> dict:
    """The version to promote: `version`, else the newest student that was never rolled back."""
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    if version is not None:
        chosen = [v for v in versions if str(v.version) == str(version)]
        if not chosen:
            have = ", ".join(str(v.version) for v in versions) or "none"
            raise CandidateError(f"{name} has no version {version} (has: {have})")
    else:
        chosen = [v for v in versions if v.tags.get("role") != "teacher"
                  and v.tags.get(stages.STAGE_TAG) not in (stages.ROLLED_BACK, stages.ARCHIVED)]
        if not chosen:
            raise CandidateError(f"{name} has no student version to promote; run `run.py --pipeline distill_intent` "
                                 "first, or pass --version N")
    candidate, number = chosen[-1], str(chosen[-1].version)
    held = [alias for alias, version in stages.aliases(client, name).items()
            if version == number and alias in stages.STAGES]
    return {"name": name, "version": number, "tags": dict(candidate.tags),
            "stage": held[0] if held else candidate.tags.get(stages.STAGE_TAG, stages.NONE)}


def offline_metrics(client: MlflowClient, name: str, version: str) -> dict[str, object]:
    """The candidate's recorded gate numbers plus the checklist facts of runbook 15.1.

    - ``rollback_target_available``: 1 if another version is in production (it would become
      last-known-good) or a last-known-good alias exists;
    - ``monitoring_baseline_complete``: 1 if the version carries every approved-benchmark tag the
      rollback triggers compare against (without them, `monitor_intent` cannot watch it).
    """
    tags = dict(client.get_model_version(name, version).tags)
    production = stages.version_in_stage(client, name, stages.PRODUCTION)
    last_good = stages.version_in_stage(client, name, stages.LAST_KNOWN_GOOD)
    target = (production is not None and production != version) or (last_good is not None and last_good != version)
    baseline = all(_finite(tags.get(key)) for key in MONITORING_BASELINE_TAGS)
    return {**tags, "rollback_target_available": float(target), "monitoring_baseline_complete": float(baseline)}


def _finite(value: object) -> bool:
    try:
        return np.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def gate_offline(client: MlflowClient, name: str, version: str, config: PromoteIntentConfig) -> GateDecision:
    """Evaluate the offline gate set and write it on the version (``gate.offline.*`` tags)."""
    decision = evaluate_gates("offline", config.offline_gates, offline_metrics(client, name, version))
    write_gate_record(client, name, version, decision)
    return decision


def write_gate_record(client: MlflowClient, name: str, version: str, decision: GateDecision,
                      artifact_uri: str | None = None) -> None:
    for key, value in decision.to_tags().items():
        client.set_model_version_tag(name, version, key, value)
    client.set_model_version_tag(name, version, f"gate.{decision.gate_set}.evaluated_at", stages.now())
    if artifact_uri:
        client.set_model_version_tag(name, version, f"gate.{decision.gate_set}.record", artifact_uri)


@dataclass
class ShadowResult:
    metrics: dict[str, float]
    disagreements: pd.DataFrame
    event: dict
    decision: GateDecision
    traffic: TrafficLog


def _threads(tags: dict) -> int | None:
    try:
        return int(tags.get("serving_threads"))
    except (TypeError, ValueError):
        return None


def run_shadow(client: MlflowClient, name: str, staging: str, production: str, config: ShadowConfig) -> ShadowResult:
    """Replay the traffic log through the production and staging versions and gate the comparison."""
    production_tags = client.get_model_version(name, production).tags
    staging_tags = client.get_model_version(name, staging).tags
    control = load_version_classifier(name, production, _threads(production_tags))
    shadow = load_version_classifier(name, staging, _threads(staging_tags))
    traffic = load_traffic(config.traffic, tuple(control.labels))
    texts = traffic.rows["text"].tolist()
    produced = replay(control.predict, texts, config.latency_warmup)
    shadowed = replay(shadow.predict, texts, config.latency_warmup)
    metrics, bucket = compare(produced, shadowed, traffic.rows, refusal_label=config.labels.refusal_label,
                              escalation_labels=config.labels.escalation_labels,
                              all_labels=control.labels if traffic.labelled else None)
    metrics["quarantined_rows"] = float(len(traffic.quarantine))
    decision = evaluate_gates("shadow", config.gates, metrics)
    event = shadow_event(metrics, model_name=name, staging_version=staging, production_version=production,
                         production_role=production_tags.get("role", "production"))
    return ShadowResult(metrics, bucket, event, decision, traffic)


def advance_rollout(client: MlflowClient, name: str, version: str, shadow_passed: bool,
                    config: PromoteIntentConfig) -> dict:
    """Advance the version's rollout state; at 100% it becomes production (the old one archived)."""
    tags = client.get_model_version(name, version).tags
    state = rollout.parse_state(config.rollout.plan, tags.get("rollout.share"))
    new, how = rollout.advance(state, shadow_passed, config.rollout.steps_per_run)
    if new != state:
        history = json.loads(tags.get("rollout.history", "[]"))
        history.append({"at": stages.now(), "share": new.share})
        client.set_model_version_tag(name, version, "rollout.share", f"{new.share:g}")
        client.set_model_version_tag(name, version, "rollout.stage", new.label())
        client.set_model_version_tag(name, version, "rollout.history", json.dumps(history)[-4000:])
    result = {"rollout": new.label(), "rollout_share": new.share, "rollout_note": how, "promoted": False, "move": None}
    if new.complete and shadow_passed and stages.version_in_stage(client, name, stages.PRODUCTION) != version:
        move = stages.promote_to_production(client, name, version, f"gates and shadow passed; rollout {how}")
        result.update(promoted=True, move=move.describe(), archived=move.replaced)
    return result


# --------------------------------------------------------------------------------------------- monitoring
def observe_production(
    client: MlflowClient, name: str, config: MonitorIntentConfig
) -> tuple[str, dict, dict, TrafficLog]:
    """Score the production version on the labelled traffic log: quality metrics and warm single-query p95.

    Returns (version, its tags = the approved benchmark, observed metrics, the log).
    """
    version = stages.version_in_stage(client, name, stages.PRODUCTION)
    if version is None:
        raise stages.RegistryStateError(f"{name}: nothing is in production (no 'production' alias); promote first")
    tags = dict(client.get_model_version(name, version).tags)
    model = load_version_classifier(name, version, _threads(tags))
    traffic = load_traffic(config.traffic, tuple(model.labels))
    texts = traffic.rows["text"].tolist()
    result = replay(model.predict, texts, config.latency_warmup)
    observed: dict[str, float] = {"rows": float(len(texts)), "quarantined_rows": float(len(traffic.quarantine))}
    labelled = traffic.rows["label"] != ""
    if labelled.any():
        scores = quality([i for i, keep in zip(result.intents, labelled, strict=True) if keep],
                         traffic.rows.loc[labelled, "label"].tolist(), model.labels, config.labels.refusal_label,
                         config.labels.escalation_labels)
        observed.update(scores)
    timed = result.latency_ms[: config.latency_queries]
    observed["latency_p95_ms"] = latency_summary(timed)["latency_p95_ms"]
    observed["latency_p95_ms_queries"] = float(len(timed))
    return version, tags, observed, traffic


def check_triggers(config: MonitorIntentConfig, baseline: dict, observed: dict) -> TriggerDecision:
    return evaluate_triggers(config.triggers, baseline, {**observed, "latency_p95_ms": observed.get("latency_p95_ms")})


def act_on_triggers(client: MlflowClient, name: str, version: str, decision: TriggerDecision, action: str) -> dict:
    """Roll production back to last-known-good (action ``rollback``) or only record the recommendation."""
    client.set_model_version_tag(name, version, "monitor.checked_at", stages.now())
    client.set_model_version_tag(name, version, "monitor.last_decision", decision.reason[:500])
    if not decision.fired:
        return {"action": "none", "rolled_back": False, "reason": decision.reason}
    if action == "recommend":
        client.set_model_version_tag(name, version, "monitor.recommendation", f"roll back: {decision.reason}"[:500])
        target = stages.version_in_stage(client, name, stages.LAST_KNOWN_GOOD)
        return {"action": "recommend", "rolled_back": False, "reason": decision.reason, "target": target}
    move = stages.rollback_production(client, name, decision.reason)
    stages.flag_ungated_production(client, name)
    return {"action": "rollback", "rolled_back": True, "reason": decision.reason, "move": move.describe(),
            "restored": move.version, "replaced": move.replaced}
