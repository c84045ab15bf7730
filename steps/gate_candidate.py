"""Step: evaluate the offline gates, write the record on the version, stage it if they pass (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.config import GateSpec
from mangadistill.promotion.gates import evaluate_gates
from mangadistill.promotion.promote import offline_metrics, write_gate_record
from mangadistill.registry import stages
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def gate_candidate(candidate: dict[str, Any], production_before: dict[str, Any],
                   gates: dict[str, GateSpec]) -> Annotated[dict[str, Any], "offline_gates"]:
    """Classifier gates (runbook 6.9) + promotion checklist (15.1) -> `staging`, or stay where it is."""
    client, name, version = MlflowClient(), candidate["name"], candidate["version"]
    if stages.version_in_stage(client, name, stages.PRODUCTION) == version:
        return {"skipped": f"version {version} is already in production", "passed": False, "staged": False}
    decision = evaluate_gates("offline", gates, offline_metrics(client, name, version))
    artifact = f"promotion/gate_record_v{version}_offline.json"
    run_id = (mlflow.active_run() or mlflow.start_run()).info.run_id  # the tracker's run inside a pipeline
    mlflow.log_dict(decision.to_dict(), artifact)
    write_gate_record(client, name, version, decision, f"runs:/{run_id}/{artifact}")
    result = {**decision.to_dict(), "version": version, "staged": False}
    if decision.passed:
        move = stages.move_to_staging(client, name, version, f"offline gates passed: {decision.reason}")
        result.update(staged=True, move=move.describe())
    logger.info("offline gates for version %s: %s", version, decision.reason)
    mlflow.log_metric(f"offline_gates_passed_v{version}", float(decision.passed))
    log_output_metadata({"passed": decision.passed, "reason": decision.reason})
    return result
