"""What the fine-tuning server does for each request, apart from HTTP: store uploads, validate and create
jobs, cancel them, and resolve model ids to chat models (base models, the reference teacher, fine-tuned
models and their checkpoints), loaded lazily and kept in a small LRU.

Every refusal is a `ServiceError` carrying OpenAI's status, code and param; the HTTP layer
(`mangadistill.serving.openai_server`) only turns it into ``{"error": {...}}``.
"""

from __future__ import annotations

import logging
import random
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mangadistill.config.openai_server import OpenAIServerConfig
from mangadistill.errors import UserError
from mangadistill.finetune.store import ACTIVE, FineTuneStore, new_id
from mangadistill.finetune.worker import FineTuneWorker, fine_tuned_model_name, resolve_hyperparameters

logger = logging.getLogger(__name__)

__all__ = ["FineTuneService", "ServiceError"]

FINE_TUNE_PURPOSE = "fine-tune"
#: What this server trains on: text turns (no tool calls or function calls).
_TRAINABLE_ROLES = ("system", "developer", "user", "assistant")


class ServiceError(Exception):
    """A request the server refuses, in OpenAI's terms."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type


class FineTuneService:
    """Store + worker + model catalog of one server (see the module docstring)."""

    def __init__(self, config: OpenAIServerConfig, tracking_uri: str | None = None) -> None:
        self.config = config
        self.store = FineTuneStore(config.root)
        self.worker = FineTuneWorker(self.store, config, self.base_dir, tracking_uri)
        self.models = ServedModels(self)
        self._base_lock = threading.Lock()
        self._tokenizers: dict[str, Any] = {}

    # -------------------------------------------------------------------------------------- life cycle
    def start(self) -> None:
        """Requeue interrupted jobs, then start the worker."""
        recovered = self.worker.recover()
        if recovered:
            logger.info("requeued %d job(s) left running by an earlier process: %s", len(recovered), recovered)
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        self.store.close()

    def base_dir(self, name: str) -> Path:
        """The Hugging Face folder of base model `name`, prepared on first use under ``<root>/base_models``."""
        from mangadistill.response.student import base_model_for

        spec = self.config.base_models[name]
        folder = self.config.root / "base_models" / name
        with self._base_lock:
            if not (folder / "config.json").is_file() or not (folder / "mangadistill.json").is_file():
                staging = folder.with_name(f".{name}.partial")
                if staging.exists():  # a preparation cut short
                    shutil.rmtree(staging)
                base_model_for(spec.source, staging, cache_dir=self.config.root / "cache",
                               tiny=spec.tiny.model_dump() if spec.tiny else None)
                staging.rename(folder)
        return folder

    # ------------------------------------------------------------------------------------------- files
    def add_upload(self, staged: Path, *, filename: str, purpose: str) -> dict[str, Any]:
        """Keep an uploaded file (already on disk at `staged`), after checking it is fine-tuning JSONL."""
        if purpose != FINE_TUNE_PURPOSE:
            staged.unlink(missing_ok=True)
            raise ServiceError(400, f"purpose '{purpose}' is not supported here; this server takes "
                               f"'{FINE_TUNE_PURPOSE}' files only", param="purpose", code="invalid_value")
        from mangadistill.finetune.data import validate_chat_jsonl

        report = validate_chat_jsonl(staged, name=filename, count=_rough_tokens, max_tokens_per_example=10**9,
                                     min_examples=1)
        if not report.ok:
            staged.unlink(missing_ok=True)
            raise ServiceError(400, f"Invalid file format for Fine-Tuning API: {report.summary()}", param="file",
                               code="invalid_file_format")
        return self.store.add_file(staged, filename=filename, purpose=purpose)

    def file(self, file_id: str) -> dict[str, Any]:
        found = self.store.get_file(file_id)
        if found is None:
            raise ServiceError(404, f"No such File object: {file_id}", param="id", code="file_not_found")
        return found

    # -------------------------------------------------------------------------------------------- jobs
    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a ``fine_tuning.jobs.create`` body and its files, then queue the job."""
        model = body["model"]
        if model not in self.config.base_models:
            raise ServiceError(400 if model.startswith("ft:") else 404,
                               f"model '{model}' cannot be fine-tuned here; base models: {sorted(self.config.base_models)}"
                               + (" (continuing from a fine-tuned model is not supported)" if model.startswith("ft:")
                                  else ""), param="model", code="model_not_available")
        method = body.get("method") or {"type": "supervised"}
        if method["type"] != "supervised":
            raise ServiceError(400, f"method '{method['type']}' is not supported; this server runs 'supervised' "
                               "fine-tuning", param="method.type", code="invalid_value")
        requested = dict(body.get("hyperparameters") or {})
        requested.update((method.get("supervised") or {}).get("hyperparameters") or {})
        hyper = resolve_hyperparameters(requested, self.config.base_models[model])
        training = self._job_file(body["training_file"], "training_file")
        validation = self._job_file(body["validation_file"], "validation_file") if body.get("validation_file") else None
        self._validate_for(model, training, "training_file")
        if validation is not None:
            self._validate_for(model, validation, "validation_file", min_examples=1)
        seed = body.get("seed")
        job = {
            "id": new_id("ftjob-"), "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
            "fine_tuned_model": None, "finished_at": None, "hyperparameters": hyper, "model": model,
            "organization_id": self.config.organization, "result_files": [],
            "seed": int(seed) if seed is not None else random.randrange(2**31), "status": "queued",
            "trained_tokens": None, "training_file": training["id"],
            "validation_file": validation["id"] if validation else None, "estimated_finish": None,
            "integrations": [], "metadata": body.get("metadata"), "user_provided_suffix": body.get("suffix"),
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        }
        self.store.add_job(job)
        self.store.add_event(job["id"], f"Validated the training file {training['id']}"
                             + (f" and the validation file {validation['id']}" if validation else ""))
        self.store.add_event(job["id"], f"Created fine-tuning job: {job['id']} (will be {fine_tuned_model_name(job)})")
        self.worker.wake()
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        found = self.store.get_job(job_id)
        if found is None:
            raise ServiceError(404, f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id",
                               code="fine_tune_not_found")
        return found

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.job(job_id)
        cancelled = self.store.update_job(job_id, only_if_status=ACTIVE, status="cancelled",
                                          finished_at=int(time.time()), estimated_finish=None)
        if cancelled is None:
            raise ServiceError(400, f"Job {job_id} has already {job['status']}; only a queued or running job can be "
                               "cancelled", param="fine_tuning_job_id", code="job_already_finished")
        self.store.add_event(job_id, "Fine-tuning job cancelled")
        return cancelled

    def _job_file(self, file_id: str, param: str) -> dict[str, Any]:
        found = self.store.get_file(file_id)
        if found is None:
            raise ServiceError(400, f"{param} '{file_id}' does not exist; upload it with files.create first",
                               param=param, code="invalid_file")
        if found["purpose"] != FINE_TUNE_PURPOSE:
            raise ServiceError(400, f"{param} '{file_id}' has purpose '{found['purpose']}'; upload it with "
                               f"purpose '{FINE_TUNE_PURPOSE}'", param=param, code="invalid_file")
        return found

    def _validate_for(self, model: str, file: dict[str, Any], param: str, min_examples: int = 10) -> None:
        """The file's examples against the base model: roles it can train on, tokens within its limit."""
        from mangadistill.finetune.data import read_examples, validate_chat_jsonl

        path = self.store.file_path(file["id"])
        for number, example in read_examples(path):
            for message in example.get("messages", []):
                if message.get("role") not in _TRAINABLE_ROLES or "tool_calls" in message or "function_call" in message:
                    raise ServiceError(400, f"{param} '{file['id']}' line {number}: this server trains on text "
                                       f"turns only ({', '.join(_TRAINABLE_ROLES)}); remove tool and function calls",
                                       param=param, code="invalid_training_file")
        try:
            count = self.token_counter(model)
        except UserError as exc:  # the server's own base model does not load: its operator must fix the config
            raise ServiceError(500, f"base model '{model}' does not load on this server: {exc}",
                               type="server_error", code="model_unavailable") from None
        report = validate_chat_jsonl(path, name=file["filename"], count=count,
                                     max_tokens_per_example=self.config.base_models[model].max_tokens_per_example,
                                     min_examples=min_examples)
        if not report.ok:
            raise ServiceError(400, f"{param} '{file['id']}' is invalid: {report.summary()}", param=param,
                               code="invalid_training_file")

    def token_counter(self, model: str):
        """Tokens of a string under base model `model`'s tokenizer (loaded once per model)."""
        if model not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[model] = AutoTokenizer.from_pretrained(self.base_dir(model))
        tokenizer = self._tokenizers[model]
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------------------------------ models
    def model_path(self, name: str) -> Path | None:
        """Where the weights of model id `name` lie (None for the reference teacher or an unknown id)."""
        if name in self.config.base_models:
            return self.base_dir(name)
        if name.startswith("ft:"):
            job = self.store.fine_tuned_models().get(name)
            if job is not None:
                return self.store.job_dir(job["id"]) / "model"
            return self.store.checkpoint_path(name)
        return None

    def model_names(self) -> list[str]:
        """Ids listed by ``GET /v1/models``: base models, the reference teacher, fine-tuned models."""
        names = list(self.config.base_models)
        if self.config.reference_teacher:
            names.append(self.config.reference_teacher)
        return names + list(self.store.fine_tuned_models())


class ServedModels(Mapping):
    """Model id -> chat model, loaded on first use, at most `max_loaded_models` kept (a `ModelSource`'s value).

    Iterating lists what ``/v1/models`` shows; lookup also accepts checkpoint ids (``...:ckpt-step-N``).
    """

    def __init__(self, service: FineTuneService) -> None:
        self.service = service
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self) -> ServedModels:  # the chat router reads its models through a callable
        return self

    def __getitem__(self, name: str):
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
        model = self._load(name)
        with self._lock:
            self._loaded[name] = model
            while len(self._loaded) > self.service.config.max_loaded_models:
                self._loaded.popitem(last=False)
        return model

    def _load(self, name: str):
        if name == self.service.config.reference_teacher:
            from mangadistill.response.reference_teacher import ReferenceTeacher

            return ReferenceTeacher(name=name)
        path = self.service.model_path(name)
        if path is None or not path.exists():
            raise KeyError(name)
        from mangadistill.response.generation import HFChatModel

        return HFChatModel(path, name=name)

    def __contains__(self, name: object) -> bool:
        """Whether `name` is served (without loading it)."""
        if not isinstance(name, str):
            return False
        if name in self._loaded or name == self.service.config.reference_teacher:
            return True
        if name in self.service.config.base_models:
            return True
        path = self.service.model_path(name)
        return path is not None and path.exists()

    def __iter__(self) -> Iterator[str]:
        return iter(self.service.model_names())

    def __len__(self) -> int:
        return len(self.service.model_names())


def _rough_tokens(text: str) -> int:
    """A cheap token count for the upload-time format check (the real count comes at job creation)."""
    return len(text) // 4 + 1
