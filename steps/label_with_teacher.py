"""Step: run the teacher once over every split and cache its soft labels."""

from __future__ import annotations

import logging
from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from mangadistill.data.dataset import IntentDataset
from mangadistill.models.encoders import ModelDir
from mangadistill.teacher.labeling import TeacherLabels, label_dataset
from mangadistill.tracking import log_grouped
from materializers import TeacherLabelsMaterializer
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)


@step(experiment_tracker=True, output_materializers=TeacherLabelsMaterializer)
def label_with_teacher(
    intent_dataset: IntentDataset, teacher_model: ModelDir, low_confidence_threshold: float,
    augmented_queries: pd.DataFrame | None = None,
) -> Annotated[TeacherLabels, "teacher_labels"]:
    """Hard labels, logits, entropy and confidence spread for train/val/gate (runbook 11.1, 18.1), and soft
    labels for the augmented queries when there are any."""
    augmented = [] if augmented_queries is None else augmented_queries["text"].tolist()
    with compute_timer():
        labels = label_dataset(teacher_model, intent_dataset, low_confidence_threshold, augmented)
    summary = {k: v for k, v in labels.summary.items() if isinstance(v, (int, float))}
    logger.info("teacher labels: %s", labels.summary)
    log_output_metadata(summary)
    log_grouped("teacher_labels", summary)
    mlflow.log_dict(labels.summary, "events/teacher_label_generation.json")
    return labels
