"""Step: the production-traffic log, simulated or read, PII-scrubbed and de-duplicated (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from mangadistill.config import TrafficConfig
from mangadistill.drift.traffic import load_traffic
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def load_traffic_log(config: TrafficConfig) -> Annotated[pd.DataFrame, "traffic_log"]:
    """``text`` (and ``label`` when every row has one); a file may change under the same path, hence no cache."""
    with compute_timer():
        frame, counts = load_traffic(config)
    source = str(config.path) if config.path is not None else f"simulator(drift={config.simulator.drift})"
    logger.info("traffic log %s: %s", source, ", ".join(f"{k}={v}" for k, v in counts.items()))
    mlflow.log_params({"traffic.source": source, "traffic.labelled": "label" in frame.columns})
    mlflow.log_metrics({f"traffic_{key}": float(value) for key, value in counts.items()})
    log_output_metadata({"source": source, **counts})
    return frame
