"""Step: quarantine, de-duplicate and split the rows the reader scrubbed of PII (runbook 2-3)."""

from __future__ import annotations

import logging
from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from mangadistill.config import DataConfig
from mangadistill.data.cleaning import clean_and_split
from mangadistill.data.dataset import IntentDataset
from mangadistill.tracking import log_grouped
from materializers import IntentDatasetMaterializer
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)


@step(experiment_tracker=True, output_materializers=IntentDatasetMaterializer)
def clean_intent_data(raw_rows: pd.DataFrame, config: DataConfig) -> Annotated[IntentDataset, "intent_dataset"]:
    """Clean the rows into train / validation / frozen gate splits and log every count."""
    with compute_timer():
        dataset = clean_and_split(raw_rows, config)
    counts = {key: value for key, value in dataset.report.items() if isinstance(value, int)}
    logger.info("cleaning: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
    log_output_metadata(counts)
    log_grouped("data", counts)
    mlflow.log_text(dataset.label_counts().to_csv(), "data/label_counts.csv")
    if not dataset.quarantine.empty:  # scrubbed like every row, by the reader
        mlflow.log_text(dataset.quarantine.to_csv(index=False), "data/quarantine.csv")
    return dataset
