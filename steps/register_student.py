"""Step: register the served student variant as a new version of the MLflow registered model (never cached)."""

from __future__ import annotations

import logging
import tempfile
from typing import Annotated, Any

import mlflow
import yaml
from zenml import get_step_context, step

from mangadistill.config import RegistryConfig
from mangadistill.export.onnx import serving_copy
from mangadistill.models.model_dir import ModelDir
from mangadistill.registry.register import register_classifier
from mangadistill.tracking import flat_params
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)

GATE_TAGS = ("accuracy", "macro_f1", "rare_class_recall", "refusal_precision", "refusal_recall",
             "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cold_start_ms", "size_mb", "cost_per_million_usd")


@step(enable_cache=False, experiment_tracker=True)
def register_student(
    student_onnx: ModelDir,
    evaluation: dict[str, Any],
    serving_report: dict[str, Any],
    config: RegistryConfig,
    resolved_config: dict[str, Any],
) -> Annotated[dict[str, Any], "registered_model"]:
    """Log the resolved config, then register the served ONNX variant (reusing the version if it already is)."""
    context = get_step_context()
    mlflow.log_params(flat_params(resolved_config))
    mlflow.log_text(yaml.safe_dump(resolved_config, sort_keys=False), "config/resolved_config.yaml")
    served = serving_report["served_variant"]
    student, teacher = serving_report["variants"][f"student_{served}"], evaluation["teacher"]
    tags = {"role": "student", "served_variant": served, "zenml_pipeline_run": context.pipeline_run.name,
            "teacher_gate_accuracy": f"{teacher['accuracy']:.4f}",
            "fp32_student_gate_accuracy": f"{evaluation['student']['accuracy']:.4f}",
            "retention": f"{student['accuracy'] / teacher['accuracy']:.4f}",
            "cost_reduction": f"{serving_report['cost_reduction']:.4f}",
            "serving_threads": str(serving_report["serving_threads"])}
    tags.update({f"gate_{key}": f"{student[key]:.4f}" for key in GATE_TAGS if key in student})
    source_id = f"{context.inputs['student_onnx'][0].id}:{served}"
    with tempfile.TemporaryDirectory(prefix="served-") as folder:
        registered = register_classifier(
            serving_copy(student_onnx, served, folder), config.model_name, source_id=source_id, tags=tags,
            description=f"Distilled intent student served as {served}; gate accuracy {student['accuracy']:.3f} "
                        f"(teacher {teacher['accuracy']:.3f}), warm p95 {student['latency_p95_ms']:.2f} ms.",
        )
    verb = "reused existing" if registered.reused else "registered new"
    logger.info("%s version %s of '%s' (%s)", verb, registered.version, registered.name, registered.uri)
    result = {"name": registered.name, "version": registered.version, "uri": registered.uri,
              "run_id": registered.run_id, "reused": registered.reused, "served_variant": served}
    log_output_metadata(dict(result))
    return result
