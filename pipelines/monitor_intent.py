"""`monitor_intent`: the family-generic monitoring (`pipelines.monitor`) as the intent family runs it."""

from __future__ import annotations

from zenml import pipeline

from mangadistill.config import MonitorConfig
from pipelines.monitor import TRIGGER_FIRED, exit_code, monitoring_steps, run_outputs, summary


@pipeline
def monitor_intent(config: MonitorConfig) -> None:
    """Rollback triggers (runbook 15.3) and drift for the intent family's production version."""
    monitoring_steps(config)


__all__ = ["TRIGGER_FIRED", "exit_code", "monitor_intent", "run_outputs", "summary"]
