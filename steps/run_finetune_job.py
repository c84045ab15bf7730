"""Step: upload the chat files (once), start the supervised fine-tuning job (once) and follow it to its end,
its events streamed to the console and MLflow (runbook 7.9). A re-run finds the files and the job again."""

from __future__ import annotations

import json
import logging
import math
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import ManagedFineTuneConfig
from mangadistill.errors import DataError
from mangadistill.finetune.data import write_chat_files
from mangadistill.finetune.workflow import (
    ManagedEndpoint,
    epoch_checkpoints,
    follow_job,
    job_key,
    start_or_resume_job,
    upload_once,
)
from mangadistill.response.dataset import ResponseDataset
from steps._context import log_output_metadata, run_label

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def run_finetune_job(response_dataset: ResponseDataset, finetune_files: dict[str, Any],
                     config: ManagedFineTuneConfig) -> Annotated[dict[str, Any], "finetune_job"]:
    """Upload, create or resume, follow; returns the job, its files and every epoch checkpoint."""
    files = write_chat_files(response_dataset, config.files_dir / finetune_files["train"]["sha256"][:16],
                             seed=config.seed)
    for split, written in (("train", files.train), ("validation", files.validation)):
        if written.sha256 != finetune_files[split]["sha256"]:
            raise DataError(f"{split} file {written.path} differs from the validated one; re-run with --no-cache")
    endpoint = ManagedEndpoint.of(config)
    client = endpoint.client()
    training, reused_train = upload_once(client, files.train)
    validation, reused_validation = upload_once(client, files.validation)
    hyperparameters = config.hyperparameters()
    key = job_key(model=config.model, train=files.train, validation=files.validation, hyperparameters=hyperparameters,
                  suffix=config.suffix, seed=config.seed, attempt=config.attempt)
    job, reused_job = start_or_resume_job(
        client, key=key, model=config.model, training_file=training.id, validation_file=validation.id,
        hyperparameters=hyperparameters, suffix=config.suffix, seed=config.seed,
        metadata={"pipeline": "distill_response_managed", "run": run_label()[:500]})
    mlflow.set_tags({"fine_tuning_job_id": job.id, "fine_tuning_base_url": config.base_url})
    events: list[dict[str, Any]] = []

    def on_event(event) -> None:
        logger.info("[%s] %s", job.id, event.message)
        events.append(event.model_dump(mode="json"))
        data = event.data if isinstance(event.data, dict) else {}
        if event.type == "metrics" and isinstance(data.get("step"), (int, float)):
            for metric in ("train_loss", "valid_loss"):
                if isinstance(data.get(metric), (int, float)) and math.isfinite(data[metric]):
                    mlflow.log_metric(f"job/{metric}", float(data[metric]), step=int(data["step"]))

    try:
        finished = follow_job(client, job.id, on_event=on_event, poll_s=config.poll_seconds,
                              timeout_s=config.job_timeout_s)
    finally:
        mlflow.log_text("\n".join(json.dumps(e) for e in events) + "\n", "finetune/job_events.jsonl")
    checkpoints = epoch_checkpoints(client, finished)
    result = {"job_id": finished.id, "status": finished.status, "base_url": config.base_url, "model": finished.model,
              "fine_tuned_model": finished.fine_tuned_model, "trained_tokens": finished.trained_tokens,
              "hyperparameters": finished.hyperparameters.model_dump(mode="json"), "key": key,
              "training_file": training.id, "validation_file": validation.id,
              "reused": {"training_file": reused_train, "validation_file": reused_validation, "job": reused_job},
              "checkpoints": [{"epoch": c.epoch, "step": c.step, "model": c.model, "metrics": c.metrics}
                              for c in checkpoints]}
    mlflow.log_dict(result, "finetune/job.json")
    log_output_metadata({"job_id": finished.id, "fine_tuned_model": finished.fine_tuned_model or "",
                         "trained_tokens": finished.trained_tokens or 0, "reused_job": reused_job})
    return result
