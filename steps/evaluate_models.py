"""Step: evaluate teacher and student on the frozen gate set, side by side."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import RefusalConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.evaluate import evaluate_model_dir
from mangadistill.evaluation.report import comparison_table, confusion_figure, render_markdown
from mangadistill.models.encoders import ModelDir
from mangadistill.tracking import log_figure, log_grouped
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)


@step(experiment_tracker=True)
def evaluate_models(
    intent_dataset: IntentDataset, teacher_model: ModelDir, student_model: ModelDir, refusal: RefusalConfig
) -> Annotated[dict[str, Any], "evaluation"]:
    """Accuracy, in-scope accuracy, macro-F1, rare-class recall, refusal P/R, size and parameters of teacher and
    student (PyTorch); with `refusal.calibrate_threshold`, each with its own refusal threshold from validation."""
    report: dict[str, Any] = {"labels": list(intent_dataset.labels), "split": "gate",
                              "refusal_label": intent_dataset.refusal_label}
    with compute_timer():
        results = {role: evaluate_model_dir(model_dir, intent_dataset, refusal=refusal)
                   for role, model_dir in (("teacher", teacher_model), ("student", student_model))}
    for role, (metrics, matrix) in results.items():
        report[role] = metrics
        log_grouped("gate", {f"{role}_{k}": v for k, v in metrics.items()})
        log_figure(confusion_figure(matrix, intent_dataset.labels, f"{role} confusion (gate set)"),
                   f"evaluation/confusion_{role}.png")
    report["retention"] = report["student"]["accuracy"] / report["teacher"]["accuracy"]
    log_grouped("gate", {"student_retention": report["retention"]})
    table = render_markdown(comparison_table(report["teacher"], report["student"]))
    mlflow.log_text(table, "evaluation/teacher_vs_student.md")
    mlflow.log_dict(report, "evaluation/gate_metrics.json")
    logger.info("gate set, teacher vs student:\n%s", table)
    log_output_metadata({"teacher_accuracy": report["teacher"]["accuracy"], "student_accuracy": report["student"]["accuracy"],
                  "retention": report["retention"]})
    return report
