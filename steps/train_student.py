"""Step: distill the teacher into the student, Stage 1 (feature/attention transfer) then Stage 2 (output KD)."""

from __future__ import annotations

import tempfile
from typing import Annotated

import mlflow
from zenml import step

from mangadistill.config import StudentConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.report import curves_figure
from mangadistill.models.encoders import ModelDir, describe, save_model_dir
from mangadistill.teacher.labeling import TeacherLabels
from mangadistill.tracking import EpochLogger, log_figure, log_grouped, logger
from mangadistill.training.checkpoints import checkpoint_dir_for, remove_job
from mangadistill.training.distill import distill_student
from mangadistill.training.launch import distill_in_processes
from mangadistill.training.loop import TrainResult
from mangadistill.training.tables import STAGE1, STAGE2, StageSpec, stage_report
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata, run_label


def _log_stage(result: TrainResult, spec: StageSpec) -> str:
    """Log a finished stage's table, stop report, tag, metrics and curves; returns its summary line."""
    report = stage_report(result, spec)
    mlflow.log_text(report.markdown, f"student/{spec.name}_epochs.md")
    mlflow.log_text(report.csv, f"student/{spec.name}_epochs.csv")
    mlflow.log_text(report.stop_report, f"student/{spec.name}_stop.txt")
    mlflow.set_tag(f"{spec.name}_stop_reason", result.stop_reason[:5000])
    log_grouped(spec.name, {"epochs_run": len(result.history), "train_seconds": result.train_seconds})
    log_figure(curves_figure(result.history, spec.curves, f"student {spec.name.replace('stage', 'stage ')}"),
               f"student/{spec.name}_curves.png")
    logger.info("%s epochs:\n%s%s ended: %s", spec.name, report.markdown, spec.name, result.stop_reason)
    return report.summary


@step(experiment_tracker=True, output_materializers=ModelDirMaterializer)
def train_student(
    intent_dataset: IntentDataset,
    teacher_model: ModelDir,
    teacher_labels: TeacherLabels,
    config: StudentConfig,
) -> Annotated[ModelDir, "student_model"]:
    """Stage 1: lambda_feat * L_feature + lambda_attn * L_attn (teacher online, probe head); Stage 2:
    alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE on cached logits (`config.stage2.kd`). Each stage ends by its
    runbook stop rule; the first epoch with the best validation accuracy is deployed. Epoch checkpoints make a
    killed run resume when the same job is run again."""
    teacher_name = teacher_model.card.get("source_model", "teacher")
    stage1_logger = EpochLogger(stage="feature_kd", run_label=run_label(), student=config.init, teacher=teacher_name,
                                group="stage1", artifact_name="stage1_epoch_end.jsonl")
    stage2_logger = EpochLogger(stage="output_kd", run_label=run_label(), student=config.init, teacher=teacher_name)
    checkpoint_dir = checkpoint_dir_for(intent_dataset, teacher_model, config, teacher_labels.augmented_texts)
    if checkpoint_dir is not None and not config.checkpoints.resume:
        remove_job(checkpoint_dir)  # start over
    with compute_timer():
        if config.num_processes > 1:
            trained = distill_in_processes(config.num_processes, intent_dataset, teacher_model, teacher_labels,
                                           config, checkpoint_dir)
        else:
            trained = distill_student(intent_dataset, teacher_model, teacher_labels, config,
                                      on_epoch_end=stage2_logger, on_stage1_epoch_end=stage1_logger,
                                      checkpoint_dir=checkpoint_dir)
    summary = {"architecture": describe(trained.model), "loss": str(trained.loss),
               "augmented_queries": len(teacher_labels.augmented_texts)}
    if trained.stage1 is not None:
        stage1_summary = _log_stage(trained.stage1, STAGE1)
        mlflow.log_text(f"{trained.stage1_loss}\n{trained.layer_matching}\n", "student/stage1_loss.txt")
        summary.update(stage1_epochs=len(trained.stage1.history), stage1_stop_reason=trained.stage1.stop_reason,
                       stage1_summary=stage1_summary, stage1_loss=str(trained.stage1_loss),
                       layer_matching=trained.layer_matching)
    if trained.stage2 is not None:
        stage2_summary = _log_stage(trained.stage2, STAGE2)
        mlflow.log_text(str(trained.loss), "student/loss.txt")
        log_figure(curves_figure(trained.stage2.history, STAGE2.curves, "student distillation"),
                   "student/training_curves.png")
        summary.update(stage2_epochs=len(trained.stage2.history), stage2_stop_reason=trained.stage2.stop_reason,
                       stage2_summary=stage2_summary)
    result = trained.result
    log_grouped("student", {"best_epoch": result.best_epoch, "train_seconds":
                            sum(r.train_seconds for r in (trained.stage1, trained.stage2) if r is not None)})
    if result.resumed_from_epoch or (trained.stage1 is not None and trained.stage1.resumed_from_epoch):
        mlflow.set_tag("resumed_from_checkpoint", str(checkpoint_dir))
    log_output_metadata({"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                         "deployment_reason": result.deployment_reason, **summary})
    saved = save_model_dir(trained.model, trained.tokenizer, tempfile.mkdtemp(prefix="student-"), role="student",
                           labels=list(intent_dataset.labels), max_length=trained.max_length,
                           extra={"init": config.init, "loss": str(trained.loss), "best_epoch": result.best_epoch,
                                  "stages": [s for s, r in (("stage1", trained.stage1), ("stage2", trained.stage2)) if r],
                                  "source_model": f"student of {teacher_name}"},
                           ephemeral=True)
    if checkpoint_dir is not None and not config.checkpoints.keep_after_success:
        remove_job(checkpoint_dir)
    return saved
