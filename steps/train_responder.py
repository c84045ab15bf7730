"""Step: LoRA SFT of the student on the response dataset, evaluated and logged every epoch (runbook 8.3-8.4)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import step

from mangadistill.config import ResponseEvaluationConfig, ResponseStudentConfig, ResponseTeacherConfig
from mangadistill.models.model_dir import ModelDir
from mangadistill.response.dataset import ResponseDataset
from mangadistill.response.distill import train_responder as train
from mangadistill.response.distill import work_dir_key
from materializers import ModelDirMaterializer
from steps._context import compute_timer
from steps._response import EpochLogger, log_epoch_choice


@step(experiment_tracker=True, output_materializers={"responder_model": ModelDirMaterializer})
def train_responder(
    response_dataset: ResponseDataset, student_base: ModelDir, config: ResponseStudentConfig,
    evaluation: ResponseEvaluationConfig, teacher: ResponseTeacherConfig,
) -> tuple[Annotated[ModelDir, "responder_model"], Annotated[dict[str, Any], "responder_training"]]:
    """Train with the 8.4 stop rule, keep the 7.8 epoch, merge it; log the epoch table, events and examples."""
    on_epoch = EpochLogger(student=f"{config.base_model}+lora", teacher=teacher.model)
    work = config.cache_dir.parent / "sft" / work_dir_key(response_dataset, student_base.card, config)
    with compute_timer():
        trained = train(response_dataset, Path(student_base.path), config, evaluation, work, on_epoch=on_epoch)
    out = Path(tempfile.mkdtemp(prefix="responder-")) / "model"
    shutil.copytree(trained.merged_dir, out)
    shutil.copytree(trained.adapter_dir, out / "adapter")
    summary = {"chosen_epoch": trained.decision.chosen_epoch, "choice": trained.decision.reason,
               "stopped_early": trained.stopped_early, "stop_reason": trained.stop_reason,
               "epochs_trained": len(trained.table), "resampled_rows": trained.resampled,
               "lora_layers": list(trained.lora_layers) if trained.lora_layers else "all"}
    log_epoch_choice(trained.table, summary, output_name="responder_model")
    return ModelDir(str(out), ephemeral=True), {**summary, "table": trained.table}
