"""The managed fine-tuning workflow (runbook 7.9) through the official `openai` client, at any base URL.

The same calls run against OpenAI, against the project's own server (``run.py --serve openai``) or against
any other server that speaks the protocol:

1. `upload_once`: ``files.create`` unless the provider already holds the same bytes. Uploads are named after
   their sha256 (``mangadistill-<sha16>-train.jsonl``), so a run killed after an upload finds its file with
   ``files.list`` instead of uploading (and paying for storage) again.
2. `start_or_resume_job`: ``fine_tuning.jobs.create(method={"type": "supervised", ...}, suffix=...)``
   unless a job with the same key already exists. The key (model, both files' sha256, hyperparameters,
   suffix, seed, attempt) travels in the job's ``metadata``, and ``jobs.list(metadata=...)`` finds it, so a
   re-run never starts (or pays for) a second job. A failed or cancelled job is reported again, not
   restarted: raise ``attempt`` to start a fresh one.
3. `follow_job`: polls the job and hands each new event to a callback (console, MLflow), oldest first,
   until the job ends; a failed or cancelled job is a one-line `FineTuneJobError` with the provider's message.
4. `epoch_checkpoints`: ``jobs.checkpoints.list`` as (epoch, step, model id, metrics), oldest first.

`EndpointChatModel` is a `ChatModel` over chat completions at an endpoint: per-epoch evaluation, the gate
evaluation, and the registered responder's pyfunc all answer through it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mangadistill.config.distill_response import ManagedFineTuneConfig
from mangadistill.errors import ConfigError, ModelLoadError, UserError
from mangadistill.finetune.data import ChatFile
from mangadistill.response.chat import ChatResult

logger = logging.getLogger(__name__)

__all__ = ["Checkpoint", "EndpointChatModel", "EndpointError", "FineTuneJobError", "ManagedEndpoint", "answer_all", "epoch_checkpoints",
           "follow_job", "job_key", "start_or_resume_job", "upload_once"]

#: The metadata key that identifies a job this workflow started.
JOB_KEY = "mangadistill_job_key"
TERMINAL = ("succeeded", "failed", "cancelled")


class EndpointError(ModelLoadError):
    """A chat model at an endpoint did not answer (down, refused the key, no such model): one line, exit 4."""


class FineTuneJobError(UserError):
    """The provider failed or cancelled the job (its message included), or the job did not end in time."""

    exit_code = 1


@dataclass(frozen=True)
class ManagedEndpoint:
    """An OpenAI-compatible base URL and the environment variable that holds its key."""

    base_url: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 5

    @classmethod
    def of(cls, managed: ManagedFineTuneConfig) -> ManagedEndpoint:
        """The endpoint `distill_response_managed`'s config names."""
        return cls(managed.base_url, managed.api_key_env, managed.timeout_s, managed.max_retries)

    def api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ConfigError(f"${self.api_key_env} is not set: export the API key of {self.base_url} "
                              f"(for run.py --serve openai, the server's $MANGADISTILL_API_KEY)")
        return key

    def client(self):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.api_key(), timeout=self.timeout_s,
                      max_retries=self.max_retries)


def job_key(*, model: str, train: ChatFile, validation: ChatFile | None, hyperparameters: dict[str, Any],
            suffix: str, seed: int, attempt: int) -> str:
    """What makes two jobs the same job: same base model, same bytes, same settings, same attempt."""
    payload = json.dumps({"model": model, "train": train.sha256, "validation": validation.sha256 if validation else None,
                          "hyperparameters": hyperparameters, "suffix": suffix, "seed": seed, "attempt": attempt},
                         sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def upload_once(client, file: ChatFile) -> tuple[Any, bool]:
    """The provider's ``file`` object for `file` (purpose fine-tune): the one it holds already, else a new upload.
    Returns (file object, reused)."""
    filename = f"mangadistill-{file.sha256[:16]}-{file.path.name}"
    for existing in client.files.list(purpose="fine-tune"):
        if existing.filename == filename and existing.bytes == file.bytes and existing.status != "error":
            logger.info("reusing uploaded %s (%s)", filename, existing.id)
            return existing, True
    with file.path.open("rb") as handle:
        created = client.files.create(file=(filename, handle, "application/jsonl"), purpose="fine-tune")
    logger.info("uploaded %s as %s (%d bytes)", filename, created.id, created.bytes)
    return created, False


def start_or_resume_job(client, *, key: str, model: str, training_file: str, validation_file: str | None,
                        hyperparameters: dict[str, Any], suffix: str, seed: int,
                        metadata: dict[str, str] | None = None) -> tuple[Any, bool]:
    """The job with `key` if the provider has one (running, finished or failed), else a new supervised job.
    Returns (job, reused)."""
    for job in client.fine_tuning.jobs.list(metadata={JOB_KEY: key}):
        if (job.metadata or {}).get(JOB_KEY) == key:  # some servers ignore the filter
            logger.info("resuming fine-tuning job %s (%s)", job.id, job.status)
            return job, True
    job = client.fine_tuning.jobs.create(
        model=model, training_file=training_file, validation_file=validation_file, suffix=suffix, seed=seed,
        method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        metadata={**(metadata or {}), JOB_KEY: key})
    logger.info("started fine-tuning job %s on %s", job.id, model)
    return job, False


def follow_job(client, job_id: str, *, on_event: Callable[[Any], None] | None = None, poll_s: float = 2.0,
               timeout_s: float = 24 * 3600.0, seen: set[str] | None = None) -> Any:
    """Poll the job until it ends, handing every event not in `seen` to `on_event`, oldest first. Returns the
    succeeded job; raises `FineTuneJobError` when it failed, was cancelled or ran past `timeout_s`."""
    seen = set() if seen is None else seen
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        for event in _new_events(client, job_id, seen):
            if on_event is not None:
                on_event(event)
        if job.status in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise FineTuneJobError(f"fine-tuning job {job_id} is still {job.status} after {timeout_s:.0f} s; "
                                   "re-run to keep following it (it is not started again)")
        time.sleep(poll_s)
    if job.status == "failed":
        error = job.error
        detail = f"{error.message} (code {error.code})" if error else "no reason given"
        raise FineTuneJobError(f"fine-tuning job {job_id} failed: {' '.join(detail.split())}; fix the cause and "
                               "raise managed.attempt to start a new job")
    if job.status == "cancelled":
        raise FineTuneJobError(f"fine-tuning job {job_id} was cancelled; raise managed.attempt to start a new job")
    return job


def _new_events(client, job_id: str, seen: set[str]) -> list[Any]:
    """Events not seen yet, oldest first (the API lists newest first; page back until a seen one)."""
    fresh: list[Any] = []
    after = None
    while True:
        page = client.fine_tuning.jobs.list_events(job_id, limit=100, **({"after": after} if after else {}))
        stop = False
        for event in page.data:
            if event.id in seen:
                stop = True
                break
            fresh.append(event)
        if stop or not page.has_more or not page.data:
            break
        after = page.data[-1].id
    for event in fresh:
        seen.add(event.id)
    return list(reversed(fresh))


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    step: int
    model: str
    metrics: dict[str, Any]


def epoch_checkpoints(client, job) -> list[Checkpoint]:
    """The job's checkpoints, oldest first, each with its epoch (OpenAI keeps the last three epochs only: the
    epoch comes from the step, the final checkpoint being the job's last epoch)."""
    listed = sorted(client.fine_tuning.jobs.checkpoints.list(job.id, limit=100), key=lambda c: c.step_number)
    if not listed:
        return []
    n_epochs = job.hyperparameters.n_epochs if isinstance(job.hyperparameters.n_epochs, int) else len(listed)
    per_epoch = listed[-1].step_number / n_epochs
    return [Checkpoint(epoch=max(1, round(c.step_number / per_epoch)), step=c.step_number,
                       model=c.fine_tuned_model_checkpoint, metrics=c.metrics.model_dump(exclude_none=True))
            for c in listed]


class EndpointChatModel:
    """A `ChatModel` answered by chat completions of `model` at an OpenAI-compatible endpoint."""

    def __init__(self, endpoint: ManagedEndpoint, model: str, *, name: str | None = None, client=None) -> None:
        self.endpoint, self.model = endpoint, model
        self.name = name or model
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = self.endpoint.client()
        return self._client

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float = 0.0) -> ChatResult:
        with self._answering():
            response = self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=temperature,
                **({"max_tokens": max_tokens} if max_tokens else {}))
        choice = response.choices[0]
        usage = response.usage
        return ChatResult(text=choice.message.content or "", prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          finish_reason=choice.finish_reason or "stop")

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float = 0.0) -> Iterator[str]:
        with self._answering():
            chunks = self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=temperature, stream=True,
                **({"max_tokens": max_tokens} if max_tokens else {}))
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """The SDK's errors (after its retries) as one `EndpointError` line naming the endpoint and the model."""
        import openai

        try:
            yield
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            detail = str(body.get("message") or exc.message)  # the server's own words when it sent OpenAI's shape
            raise EndpointError(f"{self.endpoint.base_url} answered {exc.status_code} for model '{self.model}': "
                                f"{' '.join(detail.split())}") from None
        except openai.APIConnectionError as exc:  # also timeouts
            raise EndpointError(f"{self.endpoint.base_url} did not answer for model '{self.model}' "
                                f"({type(exc).__name__}: {exc}); is the server running, and the URL right?") from None


def answer_all(model: EndpointChatModel, conversations: Sequence[list[dict[str, str]]], *, max_tokens: int,
               concurrency: int = 4) -> list[ChatResult]:
    """Greedy answers to many conversations, `concurrency` requests in flight, in order."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda messages: model.complete(messages, max_tokens=max_tokens, temperature=0.0),
                             conversations))
