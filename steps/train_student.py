"""Step: distill the teacher into the student from cached teacher logits."""

from __future__ import annotations

import tempfile
from typing import Annotated

import mlflow
from zenml import step

from mangadistill.config import KDConfig, StudentConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.report import curves_figure
from mangadistill.models.encoders import ModelDir, describe, save_model_dir
from mangadistill.teacher.labeling import TeacherLabels
from mangadistill.tracking import EpochLogger, log_figure
from mangadistill.training.distill import distill_student
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata, run_label

CURVES = ("loss_total", "loss_hard", "loss_kd", "val_accuracy", "rare_class_recall", "refusal_precision")


@step(experiment_tracker=True, output_materializers=ModelDirMaterializer)
def train_student(
    intent_dataset: IntentDataset,
    teacher_model: ModelDir,
    teacher_labels: TeacherLabels,
    config: StudentConfig,
    kd: KDConfig,
) -> Annotated[ModelDir, "student_model"]:
    """(1 - alpha) * CE + alpha * T^2 * KL(p_T || p_S) on cached logits; keep the best validation epoch."""
    epoch_logger = EpochLogger(stage="output_kd", run_label=run_label(),
                               student=f"{config.init}", teacher=teacher_model.card.get("source_model", "teacher"))
    with compute_timer():
        trained = distill_student(intent_dataset, teacher_model, teacher_labels, config, kd, on_epoch_end=epoch_logger)
    mlflow.log_text(str(trained.loss), "student/loss.txt")
    mlflow.log_metrics({"student_best_epoch": trained.result.best_epoch,
                        "student_train_seconds": trained.result.train_seconds})
    log_figure(curves_figure(trained.result.history, CURVES, "student distillation"), "student/training_curves.png")
    log_output_metadata({"best_epoch": trained.result.best_epoch, "best_val_accuracy": trained.result.best_val_accuracy,
                  "loss": str(trained.loss), "architecture": describe(trained.model)})
    return save_model_dir(trained.model, trained.tokenizer, tempfile.mkdtemp(prefix="student-"), role="student",
                          labels=list(intent_dataset.labels), max_length=config.training.max_length,
                          extra={"init": config.init, "loss": str(trained.loss), "best_epoch": trained.result.best_epoch,
                                 "source_model": f"student of {teacher_model.card.get('source_model', 'teacher')}"},
                          ephemeral=True)
