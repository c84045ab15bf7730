"""Step: score production on a labelled traffic log and evaluate the rollback triggers (never cached)."""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

import mlflow
from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.config import MonitorConfig
from mangadistill.lifecycle.service import check_triggers, observe_production
from mangadistill.lifecycle.stages import sync_stage_mirrors
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def check_production(config: MonitorConfig) -> Annotated[dict[str, Any], "trigger_report"]:
    """Observed metrics (intent: rare-class recall, refusal precision, warm p95) against the approved benchmark."""
    client, name = MlflowClient(), config.registered_model
    for change in sync_stage_mirrors(client, name):
        logger.warning("registry: %s", change)
    version, record, observed, traffic = observe_production(client, name, config)
    decision = check_triggers(config, record.benchmark, observed)
    mlflow.log_metrics({f"monitor/{k}": v for k, v in observed.items() if not math.isnan(v)})
    mlflow.log_dict({"version": version, "observed": observed, **decision.to_dict()},
                    f"monitor/triggers_v{version}.json")
    logger.info("production version %s: %s", version, decision.reason)
    log_output_metadata({"version": version, "fired": decision.fired})
    return {"model_name": name, "version": version, "observed": observed, "traffic": traffic.source,
            "traffic_counts": traffic.counts, **decision.to_dict()}
