"""Step: when nothing is in production, register the candidate's teacher and make it production (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.registry import stages
from mangadistill.registry.register import register_classifier
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)

TEACHER_GATE_KEYS = ("accuracy", "macro_f1", "rare_class_recall", "refusal_precision", "refusal_recall",
                     "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "size_mb", "cost_per_million_usd")


def _distill_run_outputs(run_name: str) -> tuple[Any, dict, dict, str]:
    """Teacher ModelDir, evaluation and serving report of the `distill_intent` run that built the candidate."""
    from zenml.client import Client

    run = Client().get_pipeline_run(run_name)
    teacher_artifact = run.steps["train_teacher"].outputs["teacher_model"][0]
    evaluation = run.steps["evaluate_models"].outputs["evaluation"][0].load()
    serving = run.steps["benchmark_serving"].outputs["serving_report"][0].load()
    return teacher_artifact.load(), evaluation, serving, str(teacher_artifact.id)


@step(enable_cache=False, experiment_tracker=True)
def bootstrap_teacher(candidate: dict[str, Any], enabled: bool) -> Annotated[dict[str, Any], "production_before"]:
    """The production version before promotion; registers + promotes the teacher first if there is none."""
    client, name = MlflowClient(), candidate["name"]
    production = stages.version_in_stage(client, name, stages.PRODUCTION)
    run_name = candidate["tags"].get("zenml_pipeline_run")
    if production is not None or not enabled or not run_name:
        if production is None:
            logger.warning("nothing in production and no teacher bootstrapped (%s)",
                           "bootstrap_teacher is off" if not enabled else "candidate has no zenml_pipeline_run tag")
        return {"version": production, "bootstrapped": False}
    teacher, evaluation, serving, artifact_id = _distill_run_outputs(run_name)
    metrics = {**evaluation["teacher"], **serving["variants"]["teacher_pytorch_fp32"]}
    tags = {"role": "teacher", "zenml_pipeline_run": run_name, "cost_reduction": "0.0000",
            "serving_threads": str(serving["serving_threads"]),
            **{f"gate_{key}": f"{metrics[key]:.4f}" for key in TEACHER_GATE_KEYS if key in metrics}}
    registered = register_classifier(teacher, name, source_id=f"{artifact_id}:teacher", tags=tags,
                                     description=f"Teacher of {run_name} (PyTorch), first production model.")
    mlflow.set_tag("bootstrap_teacher_version", registered.version)
    move = stages.promote_to_production(client, name, registered.version,
                                        f"bootstrap: teacher of {run_name} is the first production model")
    logger.info("bootstrap: %s", move.describe())
    log_output_metadata({"version": registered.version, "bootstrapped": True})
    return {"version": registered.version, "bootstrapped": True, "move": move.describe()}
