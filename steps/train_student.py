"""Step: distill the teacher into the student, Stage 1 (feature/attention transfer) then Stage 2 (output KD)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import step

from mangadistill.config import KDConfig, StudentConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.report import curves_figure
from mangadistill.models.encoders import ModelDir, describe, save_model_dir
from mangadistill.teacher.labeling import TeacherLabels
from mangadistill.tracking import EpochLogger, log_figure, logger
from mangadistill.training.checkpoints import job_key, remove_job
from mangadistill.training.distill import distill_student
from mangadistill.training.launch import distill_in_processes
from mangadistill.training.loop import TrainResult
from mangadistill.training.tables import STAGE1_COLUMNS, STAGE2_COLUMNS, epoch_table
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata, run_label

STAGE1_CURVES = ("loss_feature", "loss_attention", "loss_probe", "probe_val_accuracy", "rare_class_recall")
CURVES = ("loss_total", "loss_hard", "loss_kd", "val_accuracy", "rare_class_recall", "refusal_precision")


def _dataset_fingerprint(dataset: IntentDataset) -> str:
    digest = hashlib.sha256()
    for split in ("train", "val"):
        for text, label in zip(dataset.texts(split), dataset.label_ids(split)):
            digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()[:16]


def _model_fingerprint(model_dir: ModelDir) -> str:
    """Hash of the weights (stable wherever the artifact store put the folder; differs between two teachers)."""
    digest = hashlib.sha256()
    for weights in sorted(Path(model_dir.path).glob("*.safetensors")) or sorted(Path(model_dir.path).glob("*.bin")):
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _log_stage(result: TrainResult, name: str, columns, curves, deploys: bool) -> None:
    markdown, table_csv = epoch_table(result, columns, deploys)
    mlflow.log_text(markdown, f"student/{name}_epochs.md")
    mlflow.log_text(table_csv, f"student/{name}_epochs.csv")
    decisions = "\n".join(f"epoch {i}: {reason}" for i, reason in enumerate(result.decisions, start=1))
    mlflow.log_text(f"stopped: {result.stop_reason}\nkept: {result.deployment_reason}\n\n{decisions}\n",
                    f"student/{name}_stop.txt")
    mlflow.set_tag(f"{name}_stop_reason", result.stop_reason[:5000])
    mlflow.log_metrics({f"{name}_epochs_run": len(result.history), f"{name}_train_seconds": result.train_seconds})
    log_figure(curves_figure(result.history, curves, f"student {name.replace('stage', 'stage ')}"),
               f"student/{name}_curves.png")
    logger.info("%s epochs:\n%s%s ended: %s", name, markdown, name, result.stop_reason)


def _stage_summary(result: TrainResult, loss_key: str, accuracy_key: str, rule: str) -> str:
    """``4 epochs (stop rule, runbook 6.5), loss_feature 0.812 -> 0.301, kept epoch 4 (probe_val_accuracy 90.1%)``."""
    first, last = result.history[0], result.history[-1]
    ended = f"stop rule, {rule}" if result.stopped_by_rule else "epoch budget"
    return (f"{len(result.history)} epochs ({ended}), {loss_key} {first.get(loss_key, float('nan')):.3f} -> "
            f"{last.get(loss_key, float('nan')):.3f}, kept epoch {result.best_epoch} ({accuracy_key} "
            f"{100 * result.best_val_accuracy:.1f}%)")


@step(experiment_tracker=True, output_materializers=ModelDirMaterializer)
def train_student(
    intent_dataset: IntentDataset,
    teacher_model: ModelDir,
    teacher_labels: TeacherLabels,
    config: StudentConfig,
    kd: KDConfig,
) -> Annotated[ModelDir, "student_model"]:
    """Stage 1: lambda_feat * L_feature + lambda_attn * L_attn (teacher online, probe head); Stage 2:
    alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE on cached logits. Each stage ends by its runbook stop
    rule; the first epoch with the best validation accuracy is deployed. Epoch checkpoints make a killed
    run resume when the same job is run again."""
    teacher_name = teacher_model.card.get("source_model", "teacher")
    stage1_logger = EpochLogger(stage="feature_kd", run_label=run_label(), student=config.init, teacher=teacher_name,
                                prefix="stage1_", artifact_name="stage1_epoch_end.jsonl")
    stage2_logger = EpochLogger(stage="output_kd", run_label=run_label(), student=config.init, teacher=teacher_name)
    checkpoint_dir = None
    if config.checkpoints.enabled:
        key = job_key(_dataset_fingerprint(intent_dataset), _model_fingerprint(teacher_model),
                      config.model_dump(mode="json", exclude={"checkpoints"}),
                      kd.model_dump(mode="json"))
        checkpoint_dir = Path(config.checkpoints.dir).absolute() / f"student-{key}"
        if not config.checkpoints.resume:
            remove_job(checkpoint_dir)  # start over
    with compute_timer():
        if config.num_processes > 1:
            trained = distill_in_processes(config.num_processes, intent_dataset, teacher_model, teacher_labels,
                                           config, kd, checkpoint_dir)
        else:
            trained = distill_student(intent_dataset, teacher_model, teacher_labels, config, kd,
                                      on_epoch_end=stage2_logger, on_stage1_epoch_end=stage1_logger,
                                      checkpoint_dir=checkpoint_dir)
    summary = {"architecture": describe(trained.model), "loss": str(trained.loss)}
    if trained.stage1 is not None:
        _log_stage(trained.stage1, "stage1", STAGE1_COLUMNS, STAGE1_CURVES, deploys=False)
        mlflow.log_text(f"{trained.stage1_loss}\n{trained.layer_matching}\n", "student/stage1_loss.txt")
        summary.update(stage1_epochs=len(trained.stage1.history), stage1_stop_reason=trained.stage1.stop_reason,
                       stage1_summary=_stage_summary(trained.stage1, "loss_feature", "probe_val_accuracy", "runbook 6.5"),
                       stage1_loss=str(trained.stage1_loss), layer_matching=trained.layer_matching)
    if trained.stage2 is not None:
        _log_stage(trained.stage2, "stage2", STAGE2_COLUMNS, CURVES, deploys=True)
        mlflow.log_text(str(trained.loss), "student/loss.txt")
        log_figure(curves_figure(trained.stage2.history, CURVES, "student distillation"), "student/training_curves.png")
        summary.update(stage2_epochs=len(trained.stage2.history), stage2_stop_reason=trained.stage2.stop_reason,
                       stage2_summary=_stage_summary(trained.stage2, "loss_kd", "val_accuracy", "runbook 10.2"))
    result = trained.result
    mlflow.log_metrics({"student_best_epoch": result.best_epoch, "student_train_seconds":
                        sum(r.train_seconds for r in (trained.stage1, trained.stage2) if r is not None)})
    if result.resumed_from_epoch or (trained.stage1 is not None and trained.stage1.resumed_from_epoch):
        mlflow.set_tag("resumed_from_checkpoint", str(checkpoint_dir))
    log_output_metadata({"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                         "deployment_reason": result.deployment_reason, **summary})
    saved = save_model_dir(trained.model, trained.tokenizer, tempfile.mkdtemp(prefix="student-"), role="student",
                           labels=list(intent_dataset.labels), max_length=config.training.max_length,
                           extra={"init": config.init, "loss": str(trained.loss), "best_epoch": result.best_epoch,
                                  "stages": [s for s, r in (("stage1", trained.stage1), ("stage2", trained.stage2)) if r],
                                  "source_model": f"student of {teacher_name}"},
                           ephemeral=True)
    if checkpoint_dir is not None and not config.checkpoints.keep_after_success:
        remove_job(checkpoint_dir)
    return saved

