"""Step: register the distilled responder (merged model, its LoRA adapter inside under adapter/) as a version."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, step

from mangadistill.config import ResponseRegistryConfig
from mangadistill.families.responder import student_record
from mangadistill.lifecycle.registration import register_version
from mangadistill.models.model_dir import ModelDir
from mangadistill.response.pyfunc import MODEL_ARTIFACT, log_responder
from steps._context import log_output_metadata
from steps._response import log_resolved_config

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def register_responder(responder_model: ModelDir, response_evaluation: dict[str, Any], variant_report: dict[str, Any],
                       config: ResponseRegistryConfig,
                       resolved_config: dict[str, Any]) -> Annotated[dict[str, Any], "registered_model"]:
    """Log the resolved config, then register the responder (reusing the version of the same weights)."""
    context = get_step_context()
    log_resolved_config(resolved_config)
    served = variant_report["served_variant"]
    source_id = f"{context.inputs['responder_model'][0].id}:{served}"
    record = student_record(context.pipeline_run.name, source_id, response_evaluation,
                            teacher=resolved_config["teacher"]["model"], served_variant=served,
                            serving_threads=int(response_evaluation["serving_threads"]))
    folder = Path(responder_model.path)
    artifacts = {MODEL_ARTIFACT: str(folder)}
    student = response_evaluation["gate"]["student"]
    registered = register_version(
        config.model_name, record, lambda: log_responder(artifacts, config.model_name),
        description=(f"Distilled responder (LoRA SFT, merged, served as {served}); gate rubric "
                     f"{student['rubric']:.2f}/5, hallucination {100 * student['hallucination_rate']:.1f}%, "
                     f"p95 {student['latency_p95_ms']:.0f} ms."))
    verb = "reused existing" if registered.reused else "registered new"
    logger.info("%s version %s of '%s' (%s)", verb, registered.version, registered.name, registered.uri)
    result = {"name": registered.name, "version": registered.version, "uri": registered.uri,
              "run_id": registered.run_id, "reused": registered.reused, "served_variant": served}
    log_output_metadata(dict(result))
    return result
