"""Step: roll production back to last-known-good when a trigger fired, or only recommend it (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.lifecycle.service import act_on_triggers as act
from mangadistill.lifecycle.stages import stage_table
from mangadistill.lifecycle.triggers import TriggerDecision
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def act_on_triggers(trigger_report: dict[str, Any], model_name: str,
                    action: Literal["rollback", "recommend"]) -> Annotated[dict[str, Any], "monitor_action"]:
    """Apply the decision of `check_production`; the reason is recorded on both versions."""
    client = MlflowClient()
    result = act(client, model_name, trigger_report["version"], TriggerDecision.from_dict(trigger_report), action)
    result["stages"] = stage_table(client, model_name)
    logger.info("monitor action: %s (%s)", result["action"], result.get("move") or result["reason"])
    log_output_metadata({"action": result["action"], "rolled_back": result["rolled_back"]})
    return result
