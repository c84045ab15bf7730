"""Step: every epoch checkpoint of the fine-tuning job evaluated through chat completions (runbook 7.6) and
the 7.8 choice of one."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import step

from mangadistill.config import (
    ManagedFineTuneConfig,
    ResponseEvaluationConfig,
    ResponseStopConfig,
    ResponseTeacherConfig,
)
from mangadistill.finetune.evaluate import evaluate_checkpoints
from mangadistill.finetune.workflow import Checkpoint, EndpointChatModel, ManagedEndpoint
from mangadistill.response.dataset import ResponseDataset
from steps._context import compute_timer
from steps._response import EpochLogger, log_epoch_choice


@step(experiment_tracker=True)
def evaluate_finetune_checkpoints(
    response_dataset: ResponseDataset, finetune_job: dict[str, Any], managed: ManagedFineTuneConfig,
    evaluation: ResponseEvaluationConfig, stop: ResponseStopConfig, teacher: ResponseTeacherConfig,
) -> Annotated[dict[str, Any], "responder_training"]:
    """The epoch table of the job's checkpoints and the kept epoch (its model id under ``chosen_model``)."""
    endpoint = ManagedEndpoint.of(managed)
    client = endpoint.client()
    checkpoints = [Checkpoint(**c) for c in finetune_job["checkpoints"]]
    on_epoch = EpochLogger(student=finetune_job["fine_tuned_model"] or managed.model, teacher=teacher.model)
    with compute_timer():
        table, decision = evaluate_checkpoints(
            response_dataset, checkpoints, lambda model: EndpointChatModel(endpoint, model, client=client),
            base_model=finetune_job["model"], evaluation=evaluation, stop=stop,
            concurrency=managed.max_concurrency, on_epoch=on_epoch)
    chosen = next(row for row in table if row["epoch"] == decision.chosen_epoch)
    summary = {"chosen_epoch": decision.chosen_epoch, "choice": decision.reason, "chosen_model": chosen["model"],
               "stopped_early": False, "stop_reason": "the provider trained every epoch; 7.8 picks among them",
               "epochs_trained": len(table), "job_id": finetune_job["job_id"]}
    log_epoch_choice(table, summary, output_name="responder_training")
    return {**summary, "table": table}
