"""Step: register the kept checkpoint of a managed fine-tune as a responder version that holds no weights: its
pyfunc answers through the endpoint (base URL, model id, key variable)."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, step

from mangadistill.config import ManagedFineTuneConfig, ResponseRegistryConfig
from mangadistill.families.responder import student_record
from mangadistill.lifecycle.registration import register_version
from mangadistill.response.pyfunc import ENDPOINT_ARTIFACT, log_responder
from steps._context import log_output_metadata
from steps._response import log_resolved_config

logger = logging.getLogger(__name__)

#: The record's served variant: answered by a remote endpoint.
SERVED_VARIANT = "openai_endpoint"


@step(enable_cache=False, experiment_tracker=True)
def register_managed_responder(responder_training: dict[str, Any], response_evaluation: dict[str, Any],
                               finetune_job: dict[str, Any], config: ResponseRegistryConfig,
                               managed: ManagedFineTuneConfig,
                               resolved_config: dict[str, Any]) -> Annotated[dict[str, Any], "registered_model"]:
    """Log the resolved config, then register the endpoint model (reusing the version of the same model id)."""
    context = get_step_context()
    log_resolved_config(resolved_config)
    model_id = responder_training["chosen_model"]
    spec = Path(tempfile.mkdtemp(prefix="responder-endpoint-")) / "endpoint.json"
    spec.write_text(json.dumps({"base_url": managed.base_url, "model": model_id, "api_key_env": managed.api_key_env,
                                "timeout_s": managed.timeout_s, "max_retries": managed.max_retries,
                                "fine_tuning_job_id": finetune_job["job_id"]}, indent=2), encoding="utf-8")
    source_id = f"{finetune_job['job_id']}:{model_id}"
    record = student_record(context.pipeline_run.name, source_id, response_evaluation,
                            teacher=resolved_config["teacher"]["model"], served_variant=SERVED_VARIANT,
                            serving_threads=0)
    student = response_evaluation["gate"]["student"]
    registered = register_version(
        config.model_name, record, lambda: log_responder({ENDPOINT_ARTIFACT: str(spec)}, config.model_name),
        description=(f"Managed fine-tune {model_id} at {managed.base_url} (job {finetune_job['job_id']}, epoch "
                     f"{responder_training['chosen_epoch']}); gate rubric {student['rubric']:.2f}/5, hallucination "
                     f"{100 * student['hallucination_rate']:.1f}%."))
    verb = "reused existing" if registered.reused else "registered new"
    logger.info("%s version %s of '%s' (%s)", verb, registered.version, registered.name, registered.uri)
    result = {"name": registered.name, "version": registered.version, "uri": registered.uri,
              "run_id": registered.run_id, "reused": registered.reused, "served_variant": SERVED_VARIANT,
              "model": model_id, "base_url": managed.base_url}
    log_output_metadata(dict(result))
    return result
