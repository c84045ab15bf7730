"""Step: read the configured dataset source into raw (text, label) rows."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import step

from mangadistill.config import DataConfig
from mangadistill.data.loaders import load_rows
from steps._context import compute_timer, log_output_metadata


@step
def load_intent_data(config: DataConfig) -> Annotated[pd.DataFrame, "raw_intent_rows"]:
    """Load raw rows (nothing filtered yet: cleaning counts and quarantines bad rows)."""
    with compute_timer():
        rows = load_rows(config)
    log_output_metadata({"source": config.source, "rows": len(rows)})
    return rows
