"""Step: the response dataset's prompts (generated from the catalog, or your chat JSONL), with retrieval context."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from mangadistill.config import ResponseDataConfig
from mangadistill.response.dataset import ResponseDataset, build_prompts
from steps._context import compute_timer, log_output_metadata


@step
def build_response_prompts(config: ResponseDataConfig) -> Annotated[ResponseDataset, "response_prompts"]:
    """Generate (or read) the prompts, retrieve each one's context, split train/validation/gate + golden."""
    with compute_timer():
        prompts = build_prompts(config)
    log_output_metadata({"source": prompts.source, **{f"{k}_counts": v for k, v in prompts.counts().items()}})
    return prompts
