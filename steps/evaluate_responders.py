"""Step: teacher vs base student vs distilled student on the gate and golden sets, against the 7.7 gates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import step

from mangadistill.config import ResponseEvaluationConfig, ResponseTeacherConfig
from mangadistill.models.model_dir import ModelDir
from mangadistill.response.dataset import ResponseDataset
from mangadistill.response.evaluate import evaluate_all
from steps._context import compute_timer
from steps._response import log_response_evaluation


@step(experiment_tracker=True)
def evaluate_responders(
    response_dataset: ResponseDataset, teacher_answers: dict[str, Any], student_base: ModelDir,
    responder_model: ModelDir, evaluation: ResponseEvaluationConfig, teacher: ResponseTeacherConfig,
) -> Annotated[dict[str, Any], "response_evaluation"]:
    """Score all three on both sets; check the distilled student's gate-set numbers against runbook 7.7."""
    with compute_timer():
        report = evaluate_all(response_dataset, teacher_answers["answers"], Path(student_base.path),
                              Path(responder_model.path), evaluation, teacher)
    log_response_evaluation(report, teacher.model)
    return report
