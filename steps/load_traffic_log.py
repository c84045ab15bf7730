"""Step: the production-traffic log, simulated or read, PII-scrubbed and de-duplicated (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from mangadistill.config import TrafficConfig
from mangadistill.traffic import for_drift, load_traffic
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)

QUARANTINE_CSV = "traffic/quarantine.csv"


@step(enable_cache=False, experiment_tracker=True)
def load_traffic_log(config: TrafficConfig) -> Annotated[pd.DataFrame, "traffic_log"]:
    """``text`` (and ``label`` when every row has one); a file may change under the same path, hence no cache."""
    with compute_timer():
        log = load_traffic(config)
        frame, counts = for_drift(log)
    logger.info("traffic log %s: %s", log.source, ", ".join(f"{k}={v}" for k, v in counts.items()))
    if len(log.quarantine):  # already PII-scrubbed, like the rows
        logger.warning("traffic log %s: %d lines quarantined (reasons in %s)", log.source, len(log.quarantine),
                       QUARANTINE_CSV)
        mlflow.log_text(log.quarantine.to_csv(index=False), QUARANTINE_CSV)
    mlflow.log_params({"traffic.source": log.source, "traffic.labelled": "label" in frame.columns})
    mlflow.log_metrics({f"traffic_{key}": float(value) for key, value in counts.items()})
    log_output_metadata({"source": log.source, **counts})
    return frame
