"""Step: LoRA SFT of the student on the response dataset, evaluated and logged every epoch (runbook 8.3-8.4)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import ResponseEvaluationConfig, ResponseStudentConfig, ResponseTeacherConfig
from mangadistill.models.model_dir import ModelDir
from mangadistill.response.dataset import ResponseDataset
from mangadistill.response.distill import train_responder as train
from mangadistill.response.distill import work_dir_key
from mangadistill.response.events import distilled_model_eval
from mangadistill.response.tables import epoch_table, plot_epochs
from mangadistill.tracking import log_figure, log_grouped
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata

#: Per-epoch metrics logged unprefixed at step=epoch (the 8.3 epoch table's columns and the 7.6 ones).
_EPOCH_KEYS = ("train_loss", "eval_loss", "val_rubric", "factuality", "relevance", "policy", "format", "conciseness",
               "hallucination_rate", "refusal_precision", "refusal_recall", "escalation_precision",
               "teacher_preference_match", "win_rate_vs_base", "p95_ms", "tokens_per_s")


@step(experiment_tracker=True, output_materializers={"responder_model": ModelDirMaterializer})
def train_responder(
    response_dataset: ResponseDataset, student_base: ModelDir, config: ResponseStudentConfig,
    evaluation: ResponseEvaluationConfig, teacher: ResponseTeacherConfig,
) -> tuple[Annotated[ModelDir, "responder_model"], Annotated[dict[str, Any], "responder_training"]]:
    """Train with the 8.4 stop rule, keep the 7.8 epoch, merge it; log the epoch table, events and examples."""
    events: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []

    def on_epoch(row: dict[str, Any], answers: list[dict[str, Any]]) -> None:
        log_grouped("", {k: row[k] for k in _EPOCH_KEYS if k in row}, step=row["epoch"])
        events.append(distilled_model_eval(student=f"{config.base_model}+lora", teacher=teacher.model,
                                           epoch=row["epoch"], metrics=row))
        examples.extend(answers)
        mlflow.log_text("\n".join(json.dumps(e) for e in events) + "\n", "events/distilled_model_eval.jsonl")
        mlflow.log_text("\n".join(json.dumps(e) for e in examples) + "\n", "examples/validation_answers.jsonl")

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
    mlflow.log_text(epoch_table(trained.table, trained.decision.chosen_epoch), "tables/epoch_table.md")
    log_figure(plot_epochs(trained.table, trained.decision.chosen_epoch), "plots/epochs.png")
    log_grouped("student", {"chosen_epoch": trained.decision.chosen_epoch, "epochs_trained": len(trained.table)})
    mlflow.log_dict(summary, "student/choice.json")
    log_output_metadata(summary, output_name="responder_model")
    return ModelDir(str(out), ephemeral=True), {**summary, "table": trained.table}
