"""The newest drift report a monitoring job can act on: read back from the MLflow runs `drift_report` logged."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from mangadistill.drift.decision import retraining_recommendation

SUMMARY_ARTIFACT = "drift/drift_summary.json"


def latest_drift_check(client: MlflowClient, experiment: str, threshold: float, max_age_hours: float) -> dict[str, Any]:
    """The retraining recommendation of the newest finished `experiment` run, or why there is none.

    Returns ``status`` (``ok``, ``no_report`` or ``stale``), ``run_id``, ``age_hours``, ``drift_share``,
    ``retrain`` and ``reason``; a stale or missing report never recommends retraining, it says so.
    """
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                                                      order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return {"status": "no_report", "run_id": None, "retrain": False,
                "reason": f"no finished run in experiment '{experiment}': run `run.py --pipeline drift_report` first"}
    run = runs[0]
    age_hours = (time.time() * 1000 - run.info.start_time) / 3.6e6
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=SUMMARY_ARTIFACT))
    summary = json.loads(local.read_text(encoding="utf-8"))
    base = {"run_id": run.info.run_id, "age_hours": age_hours, "drift_share": float(summary["drift_share"])}
    if age_hours > max_age_hours:
        return {**base, "status": "stale", "retrain": False,
                "reason": f"newest drift report ({run.info.run_id}) is {age_hours:.0f} h old, over {max_age_hours:.0f} h: "
                          "run drift_report on recent traffic"}
    recommendation = retraining_recommendation(summary, threshold)
    return {**base, "status": "ok", "retrain": recommendation.retrain, "reason": recommendation.reason}
