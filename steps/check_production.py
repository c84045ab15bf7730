"""Step: score production on a labelled traffic log and evaluate the rollback triggers (never cached)."""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

import mlflow
from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.config import MonitorIntentConfig
from mangadistill.promotion.promote import check_triggers, observe_production
from mangadistill.registry.stages import sync_stage_mirrors
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def check_production(config: MonitorIntentConfig) -> Annotated[dict[str, Any], "trigger_report"]:
    """Observed rare-class recall, refusal precision and warm p95 against the version's approved benchmark."""
    client = MlflowClient()
    for change in sync_stage_mirrors(client, config.model_name):
        logger.warning("registry: %s", change)
    version, baseline, observed, traffic = observe_production(client, config.model_name, config)
    decision = check_triggers(config, baseline, observed)
    mlflow.log_metrics({f"observed_{k}": v for k, v in observed.items() if not math.isnan(v)})
    mlflow.log_dict({"version": version, "observed": observed, **decision.to_dict()},
                    f"monitor/triggers_v{version}.json")
    logger.info("production version %s: %s", version, decision.reason)
    log_output_metadata({"version": version, "fired": decision.fired})
    return {"model_name": config.model_name, "version": version, "observed": observed, "traffic": traffic.source,
            "traffic_counts": traffic.counts, **decision.to_dict()}
