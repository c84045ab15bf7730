"""Step: the production model's intent (and confidence) for the reference and the traffic queries.

Never cached: which version is "production" is registry state, not an input of the step.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import step

from mangadistill.config import ProductionModelConfig
from mangadistill.drift.production import predict_intents as predict
from mangadistill.drift.production import resolve_production_model
from mangadistill.lifecycle.loading import load_version
from steps._context import compute_timer

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def predict_intents(
    reference_queries: pd.DataFrame, traffic_log: pd.DataFrame, config: ProductionModelConfig
) -> tuple[
    Annotated[pd.DataFrame, "reference_predictions"],
    Annotated[pd.DataFrame, "traffic_predictions"],
    Annotated[dict[str, Any], "production_model"],
]:
    """Resolve the production version (alias, else newest), load it (the one loader), predict both sides with it."""
    with compute_timer():
        model = resolve_production_model(config)
        logger.info("production model: %s, chosen by %s", model.uri, model.chosen_by)
        loaded = load_version(model.name, model.version, num_threads=0)  # batch prediction: all cores
        sides = [pd.concat([frame.reset_index(drop=True),
                            predict(loaded, frame["text"].tolist(), batch_size=config.batch_size)], axis=1)
                 for frame in (reference_queries, traffic_log)]
    mlflow.log_params({"production_model.uri": model.uri, "production_model.chosen_by": model.chosen_by})
    mlflow.set_tag("production_model_uri", model.uri)
    return sides[0], sides[1], model.as_dict()
