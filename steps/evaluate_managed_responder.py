"""Step: teacher vs base model vs the kept checkpoint on the gate and golden sets, through the endpoint, against
the 7.7 gates (the pipeline runs it under the id ``evaluate_responders``, which the life cycle reads)."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import step

from mangadistill.config import ManagedFineTuneConfig, ResponseEvaluationConfig, ResponseTeacherConfig
from mangadistill.finetune.evaluate import evaluate_endpoint_models
from mangadistill.finetune.workflow import EndpointChatModel, ManagedEndpoint
from mangadistill.response.dataset import ResponseDataset
from steps._context import compute_timer
from steps._response import log_response_evaluation


@step(experiment_tracker=True)
def evaluate_managed_responder(
    response_dataset: ResponseDataset, teacher_answers: dict[str, Any], responder_training: dict[str, Any],
    managed: ManagedFineTuneConfig, evaluation: ResponseEvaluationConfig, teacher: ResponseTeacherConfig,
) -> Annotated[dict[str, Any], "response_evaluation"]:
    """Score all three on both sets; check the kept checkpoint's gate-set numbers against runbook 7.7."""
    endpoint = ManagedEndpoint.of(managed)
    client = endpoint.client()
    with compute_timer():
        report = evaluate_endpoint_models(
            response_dataset, teacher_answers, lambda model: EndpointChatModel(endpoint, model, client=client),
            base_model=managed.model, student_model=responder_training["chosen_model"], managed=managed,
            evaluation=evaluation, teacher=teacher)
    log_response_evaluation(report, teacher.model)
    return report
