"""Step: evaluate the offline gates, keep the record on the version, stage it if they pass (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.config import GateSpec
from mangadistill.families import get_family
from mangadistill.lifecycle import stages
from mangadistill.lifecycle.service import gate_offline, write_gate_record
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def gate_candidate(candidate: dict[str, Any], production_before: dict[str, Any], family: str,
                   gates: dict[str, GateSpec]) -> Annotated[dict[str, Any], "offline_gates"]:
    """The family's offline gates (intent: runbook 6.9) + promotion checklist (15.1) -> `staging`, or stay put."""
    client, name, version = MlflowClient(), candidate["name"], candidate["version"]
    if stages.version_in_stage(client, name, stages.PRODUCTION) == version:
        return {"skipped": f"version {version} is already in production", "passed": False, "staged": False}
    decision = gate_offline(client, get_family(family), name, version, gates)
    artifact = f"promotion/gate_record_v{version}_offline.json"
    run_id = (mlflow.active_run() or mlflow.start_run()).info.run_id  # the tracker's run inside a pipeline
    mlflow.log_dict(decision.to_dict(), artifact)
    write_gate_record(client, name, version, decision, f"runs:/{run_id}/{artifact}")
    result = {**decision.to_dict(), "version": version, "staged": False}
    if decision.passed:
        move = stages.move_to_staging(client, name, version, f"offline gates passed: {decision.reason}")
        result.update(staged=True, move=move.describe())
    logger.info("offline gates for version %s: %s", version, decision.reason)
    mlflow.log_metric(f"promotion/offline_gates_passed_v{version}", float(decision.passed))
    log_output_metadata({"passed": decision.passed, "reason": decision.reason})
    return result
