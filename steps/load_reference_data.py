"""Step: the reference queries, one split of a stored `intent_dataset` (never cached: "latest" moves)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import step
from zenml.client import Client

from mangadistill.config import ReferenceDataConfig
from mangadistill.errors import DataError
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)

SOURCE_PIPELINE, SOURCE_STEP, SOURCE_OUTPUT = "distill_intent", "clean_intent_data", "intent_dataset"


def _dataset_artifact(client: Client, config: ReferenceDataConfig):
    """The pinned artifact version, else the `intent_dataset` of the latest successful distill_intent run."""
    if config.artifact_version_id is not None:
        try:
            return client.get_artifact_version(config.artifact_version_id)
        except KeyError:
            raise DataError(f"reference.artifact_version_id {config.artifact_version_id}: no such artifact "
                            "version in the active ZenML store") from None
    try:
        run = client.get_pipeline(SOURCE_PIPELINE).last_successful_run
    except (KeyError, RuntimeError):
        raise DataError(f"no successful {SOURCE_PIPELINE} run in the active ZenML store to take the reference "
                        f"from; run `python run.py --pipeline {SOURCE_PIPELINE}` first or set "
                        "reference.artifact_version_id") from None
    return run.steps[SOURCE_STEP].outputs[SOURCE_OUTPUT][0]


@step(enable_cache=False)
def load_reference_data(config: ReferenceDataConfig) -> tuple[
    Annotated[pd.DataFrame, "reference_queries"], Annotated[dict[str, Any], "reference_source"]
]:
    """Queries (``text``, ``label``) of the configured split of the reference dataset version, and its identity."""
    client = Client()
    with compute_timer():
        artifact = _dataset_artifact(client, config)
        frame = artifact.load().split(config.split)[["text", "label"]].reset_index(drop=True)
    producer = artifact.producer_pipeline_run_id
    source = {"artifact_version_id": str(artifact.id), "artifact_version": str(artifact.version),
              "split": config.split, "rows": len(frame),
              "run_name": client.get_pipeline_run(producer).name if producer else None}
    logger.info("reference: %d %s rows of intent_dataset version %s (run %s)", len(frame), config.split,
                artifact.version, source["run_name"])
    log_output_metadata({key: value for key, value in source.items() if value is not None},
                        output_name="reference_queries")
    return frame, source
