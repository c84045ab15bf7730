"""Step: register the student as a new version of the MLflow registered model (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import mlflow
import yaml
from zenml import get_step_context, step

from mangadistill.config import RegistryConfig
from mangadistill.models.encoders import ModelDir
from mangadistill.registry.register import register_classifier
from mangadistill.tracking import flat_params
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)

GATE_TAGS = ("accuracy", "macro_f1", "rare_class_recall", "refusal_precision", "refusal_recall",
             "latency_p50_ms", "latency_p95_ms", "size_mb")


@step(enable_cache=False, experiment_tracker=True)
def register_student(
    student_model: ModelDir, evaluation: dict[str, Any], config: RegistryConfig, resolved_config: dict[str, Any]
) -> Annotated[dict[str, Any], "registered_model"]:
    """Log the resolved config, then register the student (reusing the version if these weights already are)."""
    context = get_step_context()
    mlflow.log_params(flat_params(resolved_config))
    mlflow.log_text(yaml.safe_dump(resolved_config, sort_keys=False), "config/resolved_config.yaml")
    student, teacher = evaluation["student"], evaluation["teacher"]
    tags = {"role": "student", "zenml_pipeline_run": context.pipeline_run.name,
            "teacher_gate_accuracy": f"{teacher['accuracy']:.4f}", "retention": f"{evaluation['retention']:.4f}"}
    tags.update({f"gate_{key}": f"{student[key]:.4f}" for key in GATE_TAGS if key in student})
    source_id = str(context.inputs["student_model"][0].id)
    registered = register_classifier(
        student_model, config.model_name, source_id=source_id, tags=tags,
        description=f"Distilled intent student; gate accuracy {student['accuracy']:.3f} "
                    f"(teacher {teacher['accuracy']:.3f}).",
    )
    verb = "reused existing" if registered.reused else "registered new"
    logger.info("%s version %s of '%s' (%s)", verb, registered.version, registered.name, registered.uri)
    result = {"name": registered.name, "version": registered.version, "uri": registered.uri,
              "run_id": registered.run_id, "reused": registered.reused}
    log_output_metadata({k: v for k, v in result.items()})
    return result
