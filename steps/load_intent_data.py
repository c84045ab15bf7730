"""Step: read the configured dataset source into (text, label) rows, PII already scrubbed by the reader."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import step

from mangadistill.config import DataConfig
from mangadistill.data.cleaning import pii_counts
from mangadistill.data.loaders import load_rows
from steps._context import compute_timer, log_output_metadata


@step
def load_intent_data(config: DataConfig) -> Annotated[pd.DataFrame, "raw_intent_rows"]:
    """Load the rows (nothing filtered yet: cleaning counts and quarantines bad rows; PII scrubbed at the reader)."""
    with compute_timer():
        rows = load_rows(config)
    rows_with_pii, _ = pii_counts(rows)
    log_output_metadata({"source": config.source, "rows": len(rows), "rows_with_pii": rows_with_pii})
    return rows
