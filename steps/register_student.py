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
from mangadistill.families.intent import student_record
from mangadistill.models.model_dir import ModelDir
from mangadistill.registry.register import register_classifier
from mangadistill.tracking import flat_params
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


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
    source_id = f"{context.inputs['student_onnx'][0].id}:{served}"
    record = student_record(context.pipeline_run.name, source_id, evaluation, serving_report,
                            teacher=resolved_config.get("teacher", {}).get("model"))
    student, teacher = serving_report["variants"][f"student_{served}"], evaluation["teacher"]
    with tempfile.TemporaryDirectory(prefix="served-") as folder:
        registered = register_classifier(
            serving_copy(student_onnx, served, folder, serving_threads=serving_report.get("serving_threads")),
            config.model_name, record,
            description=f"Distilled intent student served as {served}; gate accuracy {student['accuracy']:.3f} "
                        f"(teacher {teacher['accuracy']:.3f}), warm p95 {student['latency_p95_ms']:.2f} ms.",
        )
    verb = "reused existing" if registered.reused else "registered new"
    logger.info("%s version %s of '%s' (%s)", verb, registered.version, registered.name, registered.uri)
    result = {"name": registered.name, "version": registered.version, "uri": registered.uri,
              "run_id": registered.run_id, "reused": registered.reused, "served_variant": served}
    log_output_metadata(dict(result))
    return result
