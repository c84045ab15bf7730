"""Step: move production back by hand to last-known-good or a given version (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.lifecycle import stages
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def rollback_production(
    model_name: str, reason: str, version: int | None = None
) -> Annotated[dict[str, Any], "rollback"]:
    """`version` (default: the last-known-good alias) becomes production; the current one is marked rolled_back."""
    client = MlflowClient()
    for change in stages.sync_stage_mirrors(client, model_name):
        logger.warning("registry: %s", change)
    move = stages.rollback_production(client, model_name, reason, None if version is None else str(version))
    logger.info("%s", move.describe())
    log_output_metadata({"restored": move.version, "replaced": move.replaced})
    return {"model_name": model_name, "restored": move.version, "replaced": move.replaced, "move": move.describe(),
            "flags": stages.flag_ungated_production(client, model_name),
            "stages": stages.stage_table(client, model_name)}
