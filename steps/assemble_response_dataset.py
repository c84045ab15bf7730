"""Step: teacher answers + human review -> typed, weighted response dataset (runbook 7.3)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import step

from mangadistill.config import ResponseDataConfig
from mangadistill.response.dataset import ResponseDataset, assemble_dataset
from steps._context import compute_timer, log_output_metadata


@step
def assemble_response_dataset(response_prompts: ResponseDataset, teacher_answers: dict[str, Any],
                              config: ResponseDataConfig) -> Annotated[ResponseDataset, "response_dataset"]:
    """Attach answers, apply the human review, type every row (human-corrected, clean, refusal/escalation, low-conf)."""
    with compute_timer():
        dataset = assemble_dataset(response_prompts, teacher_answers["answers"], teacher_answers["low_confidence"],
                                   review_fraction=config.review_fraction, seed=config.generated.seed)
    log_output_metadata({f"{k}_counts": v for k, v in dataset.counts().items()})
    return dataset
