"""Step: fine-tune the pretrained encoder into the intent teacher."""

from __future__ import annotations

import tempfile
from typing import Annotated

from zenml import step

from mangadistill.config import TeacherConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.models.encoders import ModelDir, save_model_dir
from mangadistill.tracking import EpochLogger
from mangadistill.training.distill import fine_tune_teacher
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata, run_label


@step(experiment_tracker=True, output_materializers=ModelDirMaterializer)
def train_teacher(intent_dataset: IntentDataset, config: TeacherConfig) -> Annotated[ModelDir, "teacher_model"]:
    """Fine-tune `config.model` on the training split with cross-entropy until the teacher stop rule holds (at
    most `config.training.epochs`); keep the best validation epoch."""
    epoch_logger = EpochLogger(stage="teacher_finetune", run_label=run_label(),
                               student="-", teacher=config.model, group="teacher",
                               artifact_name="teacher_epoch_end.jsonl")
    with compute_timer():
        trained = fine_tune_teacher(intent_dataset, config, on_epoch_end=epoch_logger)
    result = trained.result
    log_output_metadata({"best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy,
                         "epochs_trained": len(result.history), "stopped_by_rule": result.stopped_by_rule,
                         "stop_reason": result.stop_reason, "train_seconds": round(result.train_seconds, 1)})
    return save_model_dir(trained.model, trained.tokenizer, tempfile.mkdtemp(prefix="teacher-"), role="teacher",
                          labels=list(intent_dataset.labels), max_length=config.training.max_length,
                          extra={"source_model": config.model, "best_epoch": trained.result.best_epoch},
                          ephemeral=True)
