"""Step: read the configured dataset source into raw (text, label) rows."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from mangadistill.config import DataConfig
from mangadistill.data.loaders import load_rows


@step
def load_intent_data(config: DataConfig) -> Annotated[pd.DataFrame, "raw_intent_rows"]:
    """Load raw rows (nothing filtered yet: cleaning counts and quarantines bad rows)."""
    rows = load_rows(config)
    log_metadata({"source": config.source, "rows": len(rows)}, infer_artifact=True)
    return rows
