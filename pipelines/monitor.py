"""`monitor`: score production on a labelled traffic log; on a rollback trigger, roll back (or recommend);
beside it, recommend retraining when the newest drift report drifted past the threshold. Any family.

`monitor_intent` is the same pipeline under the intent family's name (its own MLflow experiment).
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import MonitorConfig
from steps import act_on_triggers, check_drift, check_production

#: run.py exit code when a rollback trigger fired (whether production was rolled back or it was only recommended).
TRIGGER_FIRED = 6


def monitoring_steps(config: MonitorConfig) -> None:
    """Rollback triggers of runbook 15.3 against the production version's approved benchmark, and drift."""
    report = check_production(config=config)
    act_on_triggers(report, model_name=config.registered_model, action=config.action)
    check_drift(config=config.drift, model_name=config.registered_model)


@pipeline
def monitor(config: MonitorConfig) -> None:
    """Watch a family's production version: rollback triggers and drift."""
    monitoring_steps(config)


def run_outputs(run: Any) -> dict[str, Any]:
    return {"trigger_report": run.steps["check_production"].outputs["trigger_report"][0].load(),
            "monitor_action": run.steps["act_on_triggers"].outputs["monitor_action"][0].load(),
            "drift_check": run.steps["check_drift"].outputs["drift_check"][0].load()}


def exit_code(run: Any) -> int:
    return TRIGGER_FIRED if run_outputs(run)["trigger_report"]["fired"] else 0


def summary(run: Any) -> list[Any]:
    from pipelines._promotion_tables import stage_table, trigger_table

    outputs = run_outputs(run)
    report, action = outputs["trigger_report"], outputs["monitor_action"]
    counts = report["traffic_counts"]
    lines: list[Any] = [
        trigger_table(f"Rollback triggers, production version {report['version']} on {report['traffic']} "
                      f"({counts['rows']} rows, {counts['quarantined']} quarantined)", report),
        report["reason"],
    ]
    if action["action"] == "rollback":
        lines.append(f"ROLLED BACK: {action['move']}")
    elif action["action"] == "recommend":
        lines.append(f"RECOMMENDATION: roll back to version {action.get('target') or '(no last-known-good)'}; "
                     "production left as is (action: recommend)")
    drift = outputs["drift_check"]
    lines.append(f"drift ({drift['status']}): {'RETRAIN RECOMMENDED: ' if drift['retrain'] else ''}{drift['reason']}")
    lines.append(stage_table(report["model_name"], action["stages"]))
    return lines
