"""Step: record whether the measured drift warrants retraining, and why (MLflow tags + artifact)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.drift.decision import retraining_recommendation
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def recommend_retraining(
    drift_summary: dict[str, Any], drift_share_threshold: float
) -> Annotated[dict[str, Any], "retraining_recommendation"]:
    """Retrain when the drift share reaches the threshold (`mangadistill.drift.decision`); acts on nothing."""
    recommendation = retraining_recommendation(drift_summary, drift_share_threshold)
    logger.info("retraining recommendation: %s", recommendation.reason)
    mlflow.set_tags({"retrain_recommended": str(recommendation.retrain).lower(),
                     "retrain_reason": recommendation.reason})
    mlflow.log_dict(recommendation.as_dict(), "drift/retraining_recommendation.json")
    log_output_metadata(recommendation.as_dict())
    return recommendation.as_dict()
