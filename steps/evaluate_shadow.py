"""Step: shadow-replay traffic through production and staging; gate the comparison (never cached)."""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Annotated, Any

import mlflow
from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.config import PromoteConfig
from mangadistill.lifecycle import stages
from mangadistill.lifecycle.service import run_shadow, write_gate_record
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def evaluate_shadow(candidate: dict[str, Any], offline_gates: dict[str, Any],
                    config: PromoteConfig) -> Annotated[dict[str, Any], "shadow_report"]:
    """The family's comparison (intent: agreement, refusal/escalation rates), p95 per model; disagreement CSV;
    the `online_shadow_compare` event."""
    client, name, version = MlflowClient(), candidate["name"], candidate["version"]
    if not offline_gates.get("staged"):
        return {"skipped": "candidate not in staging", "passed": False}
    production = stages.version_in_stage(client, name, stages.PRODUCTION)
    if production is None:
        return {"skipped": "nothing in production to shadow against (enable bootstrap)", "passed": False}
    result = run_shadow(client, name, version, production, config)
    run_id = (mlflow.active_run() or mlflow.start_run()).info.run_id  # the tracker's run inside a pipeline
    with tempfile.TemporaryDirectory() as folder:
        bucket = Path(folder) / f"disagreements_v{version}_vs_v{production}.csv"
        result.disagreements.to_csv(bucket, index=False)
        mlflow.log_artifact(str(bucket), "shadow")
        if len(result.traffic.quarantine):
            result.traffic.quarantine.to_csv(Path(folder) / "quarantine.csv", index=False)
            mlflow.log_artifact(str(Path(folder) / "quarantine.csv"), "shadow")
    mlflow.log_dict(result.event, "events/online_shadow_compare.json")
    mlflow.log_dict(result.decision.to_dict(), f"promotion/gate_record_v{version}_shadow.json")
    mlflow.log_metrics({f"shadow/{k}": v for k, v in result.metrics.items() if not math.isnan(v)})
    write_gate_record(client, name, version, result.decision,
                      f"runs:/{run_id}/promotion/gate_record_v{version}_shadow.json")
    logger.info("%s", json.dumps(result.event))
    logger.info("shadow gates for version %s: %s", version, result.decision.reason)
    log_output_metadata({"passed": result.decision.passed, "agreement_rate": result.metrics.get("agreement_rate", 0.0)})
    return {**result.decision.to_dict(), "version": version, "production_version": production,
            "metrics": result.metrics, "event": result.event, "traffic": result.traffic.source,
            "traffic_counts": result.traffic.counts, "disagreements_csv": f"runs:/{run_id}/shadow/{bucket.name}"}
