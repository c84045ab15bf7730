"""Step: the teacher's answer to every prompt without one (runbook 7.10, 11.1), cached on disk and resumable."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import ResponseTeacherConfig
from mangadistill.response.dataset import ResponseDataset
from mangadistill.response.labeling import label_prompts
from mangadistill.tracking import log_grouped
from steps._context import compute_timer, log_output_metadata, run_label

logger = logging.getLogger(__name__)


@step(experiment_tracker=True)
def generate_teacher_answers(response_prompts: ResponseDataset, config: ResponseTeacherConfig,
                             low_confidence_retrieval_score: float) -> Annotated[dict[str, Any], "teacher_answers"]:
    """Ask the teacher (the reference teacher served on loopback, or your endpoint) and log the 11.1 event."""
    with compute_timer():
        labels = label_prompts(response_prompts, config, low_confidence_retrieval_score, run_id=run_label())
    event = labels["event"]
    log_grouped("teacher_labels", {key: value for key, value in event.items()
                                   if isinstance(value, (int, float)) and not isinstance(value, bool)})
    mlflow.log_dict(event, "events/teacher_label_generation.json")
    logger.info("teacher_label_generation: %s", event)
    log_output_metadata({key: value for key, value in event.items() if value is not None})
    return labels
