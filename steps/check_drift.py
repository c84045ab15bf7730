"""Step: read the newest drift report and record its retraining recommendation on the production version."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.config import MonitorDriftConfig
from mangadistill.drift.latest import latest_drift_check
from mangadistill.lifecycle.service import record_retraining
from mangadistill.lifecycle.stages import PRODUCTION, version_in_stage
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False)
def check_drift(config: MonitorDriftConfig, model_name: str) -> Annotated[dict[str, Any], "drift_check"]:
    """Beside the rollback triggers: retrain when the newest drift report's drift share reaches the threshold."""
    if not config.enabled:
        return {"status": "disabled", "retrain": False, "reason": "drift check disabled (drift.enabled: false)"}
    client = MlflowClient()
    check = latest_drift_check(client, config.experiment, config.max_drift_share, config.max_age_hours)
    production = version_in_stage(client, model_name, PRODUCTION)
    if production is not None and check["status"] == "ok":
        record_retraining(client, model_name, production, check)
    check["production_version"] = production
    logger.info("drift: %s", check["reason"])
    log_output_metadata({k: v for k, v in check.items() if v is not None})
    return check
