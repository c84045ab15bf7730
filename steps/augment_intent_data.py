"""Step: extra training queries for the teacher to label (teacher-labelled augmentation, runbook 3.4)."""

from __future__ import annotations

import logging
from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from mangadistill.config import AugmentConfig
from mangadistill.data.augment import augment_training_split, read_query_log
from mangadistill.data.dataset import IntentDataset
from mangadistill.tracking import log_grouped
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)


@step(experiment_tracker=True)
def augment_intent_data(intent_dataset: IntentDataset,
                        config: AugmentConfig) -> Annotated[pd.DataFrame, "augmented_queries"]:
    """Queries made from the training split by `config.transformations` (and read from `config.log_path`),
    without labels: columns text, transformation, source_rows. Empty when augmentation is off."""
    with compute_timer():
        log_texts, log_counts = ([], {}) if config.log_path is None else read_query_log(config.log_path,
                                                                                         config.max_log_rows)
        augmented = augment_training_split(intent_dataset, config.copies, config.transformations, config.seed,
                                           log_texts)
    report = {**augmented.report, "log_counts": log_counts}
    summary = augmented.summary()
    logger.info("augmentation: %s", summary)
    counts = {"rows": len(augmented), "log_rows_in": len(log_texts),
              "set_aside": sum(augmented.report["set_aside"].values()),
              **{f"made_{name}": n for name, n in augmented.report["made"].items()}}
    log_output_metadata({**counts, "summary": summary})
    log_grouped("augment", counts)
    mlflow.log_dict(report, "data/augmentation.json")
    if len(augmented):
        mlflow.log_text(augmented.frame.head(200).to_csv(index=False), "data/augmented_sample.csv")
    return augmented.frame
