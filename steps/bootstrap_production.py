"""Step: when nothing is in production, let the family register its first production model (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.families import get_family
from mangadistill.lifecycle.service import bootstrap_production as bootstrap
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


def _fetch(run_name: str, step_name: str, output: str) -> tuple[Any, str]:
    """An output artifact of a pipeline run in the active ZenML store, loaded, and its artifact version id."""
    from zenml.client import Client

    artifact = Client().get_pipeline_run(run_name).steps[step_name].outputs[output][0]
    return artifact.load(), str(artifact.id)


@step(enable_cache=False, experiment_tracker=True)
def bootstrap_production(candidate: dict[str, Any], family: str,
                         enabled: bool) -> Annotated[dict[str, Any], "production_before"]:
    """The production version before promotion; registers and promotes the family's bootstrap model if there is none
    (intent: the candidate's teacher, from the distill_intent run that built the candidate)."""
    client, name = MlflowClient(), candidate["name"]
    result = bootstrap(client, get_family(family), name, candidate["version"], _fetch, enabled)
    if result["bootstrapped"]:
        mlflow.set_tag("bootstrap_version", result["version"])
        logger.info("bootstrap: %s", result["move"])
    elif result["version"] is None:
        logger.warning("nothing in production and no bootstrap model (%s)", result.get("reason", ""))
    log_output_metadata({"version": result["version"] or "none", "bootstrapped": result["bootstrapped"]})
    return result
