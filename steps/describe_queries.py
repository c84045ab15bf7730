"""Step: text descriptors and sentence-embedding components for the reference and the traffic queries."""

from __future__ import annotations

import logging
from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from mangadistill.config import EmbeddingConfig
from mangadistill.drift.features import add_query_features
from steps._context import compute_timer

logger = logging.getLogger(__name__)


@step(experiment_tracker=True)
def describe_queries(
    reference_predictions: pd.DataFrame, traffic_predictions: pd.DataFrame, config: EmbeddingConfig
) -> tuple[Annotated[pd.DataFrame, "reference_features"], Annotated[pd.DataFrame, "traffic_features"]]:
    """Length, word count, out-of-vocabulary rate and ``config.components`` embedding components per query."""
    with compute_timer():
        reference, traffic, info = add_query_features(reference_predictions, traffic_predictions, config)
    logger.info("embeddings: %d dims -> %d components (%.1f%% of the reference variance)",
                info["embedding_dim"], config.components, 100 * info["explained_variance"])
    mlflow.log_params({"embedding.model": config.model, "embedding.components": config.components})
    mlflow.log_metric("embedding_explained_variance", info["explained_variance"])
    return reference, traffic
