"""Step: bring stage records in line with the aliases, then pick the version to promote (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.lifecycle.service import select_candidate as choose
from mangadistill.lifecycle.stages import sync_stage_mirrors
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def select_candidate(model_name: str, family: str, version: int | None = None) -> Annotated[dict[str, Any], "candidate"]:
    """`version`, else the newest student version of `family` that was never rolled back or archived."""
    client = MlflowClient()
    for change in sync_stage_mirrors(client, model_name):  # honour aliases moved by hand in the UI
        logger.warning("registry: %s", change)
    candidate = choose(client, model_name, version, family)
    logger.info("candidate: %s version %s (stage %s)", model_name, candidate["version"], candidate["stage"])
    log_output_metadata({"version": candidate["version"], "stage": candidate["stage"]})
    return candidate
