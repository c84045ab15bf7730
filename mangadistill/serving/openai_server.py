"""The project's OpenAI-compatible fine-tuning server (``python run.py --serve openai``).

Speaks the parts of OpenAI's API that a supervised fine-tuning workflow uses, so the same client code runs
against OpenAI, against this server, or against any other compatible server:

- ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions`` (streaming too): base models,
  the reference teacher, fine-tuned models ``ft:<base>:<suffix>:<id>`` and their checkpoints
  ``ft:...:ckpt-step-<N>`` (`mangadistill.serving.openai_chat`);
- ``POST /v1/files`` (multipart, purpose ``fine-tune``), ``GET /v1/files``, ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``;
- ``POST /v1/fine_tuning/jobs`` (method ``supervised``), ``GET /v1/fine_tuning/jobs`` (``metadata[k]=v``
  filters), ``GET .../{id}``, ``.../{id}/events``, ``.../{id}/checkpoints``, ``POST .../{id}/cancel``;
- ``GET /health`` (no key): the worker's state.

Every ``/v1`` route requires ``Authorization: Bearer <key>``; every error is OpenAI's
``{"error": {"message", "type", "param", "code"}}``. Jobs run one at a time on the LoRA trainer in a
background thread of this process (`mangadistill.finetune.worker`); state lives in SQLite under the config's
``root``, so a restarted server resumes what a killed one was running.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from mangadistill.config.openai_server import OpenAIServerLimits
from mangadistill.finetune.service import FineTuneService, ServiceError
from mangadistill.finetune.store import new_id
from mangadistill.serving.openai_chat import ChatLimits, OpenAIError, chat_router, check_key, parse_body, read_body

logger = logging.getLogger(__name__)

__all__ = ["create_openai_app"]


class _Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: Literal["auto"] | int | None = Field(None)
    learning_rate_multiplier: Literal["auto"] | float | None = Field(None)
    n_epochs: Literal["auto"] | int | None = Field(None)

    def checked(self) -> dict[str, Any]:
        ranges = {"batch_size": (1, 256), "learning_rate_multiplier": (1e-6, 100.0), "n_epochs": (1, 50)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if value not in (None, "auto") and not low <= value <= high:
                raise OpenAIError(400, f"hyperparameters.{name} is {value}; use 'auto' or a value in [{low}, {high}]",
                                  param=f"hyperparameters.{name}", code="invalid_value")
        return self.model_dump(exclude_none=True)


class _Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: _Hyperparameters | None = None


class _Method(BaseModel):
    model_config = ConfigDict(extra="allow")  # dpo / reinforcement blocks: refused by type below
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: _Supervised | None = None


class JobCreateRequest(BaseModel):
    """``fine_tuning.jobs.create``'s body, as far as this server honours it."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    hyperparameters: _Hyperparameters | None = None
    method: _Method | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None


def create_openai_app(service: FineTuneService, api_key: str, limits: OpenAIServerLimits = OpenAIServerLimits(),
                      *, run_worker: bool = True) -> FastAPI:
    """The ASGI app. With `run_worker`, its lifespan starts the job worker (after requeueing jobs a dead
    process left running) and stops it on shutdown."""
    if not api_key:
        raise ValueError("the fine-tuning server needs an API key")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if run_worker:
            service.start()
        yield
        if run_worker:
            service.worker.stop()

    app = FastAPI(title="MangaAssist OpenAI-compatible fine-tuning server", lifespan=lifespan)
    app.state.service = service
    chat_limits = ChatLimits(max_body_bytes=limits.max_body_bytes, max_messages=limits.max_messages,
                             max_tokens=limits.max_tokens, default_max_tokens=limits.default_max_tokens,
                             max_concurrency=limits.max_concurrency)
    app.include_router(chat_router(service.models, api_key=api_key, limits=chat_limits))

    @app.exception_handler(OpenAIError)
    async def openai_error(request: Request, exc: OpenAIError) -> Response:
        return exc.response()

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return OpenAIError(exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = f"{exc.detail}: {request.method} {request.url.path}"
        return OpenAIError(exc.status_code, message, headers=exc.headers).response()

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return OpenAIError(500, f"the server failed on this request ({type(exc).__name__}); see the server log",
                           type="server_error").response()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "running_job": service.worker.current_job,
                "queued_jobs": sum(1 for job in service.store.list_jobs(limit=10**6).data if job["status"] == "queued")}

    # ------------------------------------------------------------------------------------------- files
    @app.post("/v1/files")
    async def create_file(request: Request) -> Response:
        check_key(request, api_key)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_file_bytes + 65_536:
            raise OpenAIError(413, f"upload of {declared} bytes; the file limit is {limits.max_file_bytes} bytes",
                              code="file_too_large")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise OpenAIError(415, "send the file as multipart/form-data with fields 'file' and 'purpose'")
        async with request.form(max_files=1, max_fields=8) as form:
            upload, purpose = form.get("file"), form.get("purpose")
            if not isinstance(upload, UploadFile):
                raise OpenAIError(400, "missing the 'file' field (the JSONL file to upload)", param="file")
            if not isinstance(purpose, str) or not purpose:
                raise OpenAIError(400, "missing the 'purpose' field, e.g. 'fine-tune'", param="purpose")
            staged = service.store.files_dir / f".{new_id('upload-')}"
            size = await run_in_threadpool(_copy_limited, upload, staged, limits.max_file_bytes)
        if size > limits.max_file_bytes:
            staged.unlink(missing_ok=True)
            raise OpenAIError(413, f"file of more than {limits.max_file_bytes} bytes; that is the limit",
                              param="file", code="file_too_large")
        created = await run_in_threadpool(service.add_upload, staged, filename=upload.filename or "upload.jsonl",
                                          purpose=purpose)
        return JSONResponse(created)

    @app.get("/v1/files")
    def list_files(request: Request) -> Response:
        check_key(request, api_key)
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise OpenAIError(400, f"order must be 'asc' or 'desc', got '{order}'", param="order")
        page = service.store.list_files(purpose=query.get("purpose"), after=query.get("after"),
                                        limit=_limit(query, 10_000, 10_000), order=order)
        return JSONResponse(page.body(ids=True))

    @app.get("/v1/files/{file_id}")
    def retrieve_file(file_id: str, request: Request) -> Response:
        check_key(request, api_key)
        return JSONResponse(service.file(file_id))

    @app.get("/v1/files/{file_id}/content")
    def file_content(file_id: str, request: Request) -> Response:
        check_key(request, api_key)
        found = service.file(file_id)
        return FileResponse(service.store.file_path(file_id), filename=found["filename"],
                            media_type="application/octet-stream")

    # -------------------------------------------------------------------------------------------- jobs
    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request) -> Response:
        check_key(request, api_key)
        body = _parse_job(await read_body(request, limits.max_body_bytes))
        return JSONResponse(await run_in_threadpool(service.create_job, body))

    @app.get("/v1/fine_tuning/jobs")
    def list_jobs(request: Request) -> Response:
        check_key(request, api_key)
        query = request.query_params
        metadata = {key[len("metadata["):-1]: value for key, value in query.multi_items()
                    if key.startswith("metadata[") and key.endswith("]")}
        page = service.store.list_jobs(after=query.get("after"), limit=_limit(query, 20), metadata=metadata)
        return JSONResponse(page.body())

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    def retrieve_job(job_id: str, request: Request) -> Response:
        check_key(request, api_key)
        return JSONResponse(service.job(job_id))

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    def list_events(job_id: str, request: Request) -> Response:
        check_key(request, api_key)
        service.job(job_id)
        query = request.query_params
        return JSONResponse(service.store.list_events(job_id, after=query.get("after"),
                                                      limit=_limit(query, 20)).body())

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def list_checkpoints(job_id: str, request: Request) -> Response:
        check_key(request, api_key)
        service.job(job_id)
        query = request.query_params
        page = service.store.list_checkpoints(job_id, after=query.get("after"), limit=_limit(query, 10))
        return JSONResponse(page.body(ids=True))

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: str, request: Request) -> Response:
        check_key(request, api_key)
        return JSONResponse(service.cancel(job_id))

    return app


def _copy_limited(upload: UploadFile, target, limit: int) -> int:
    """Copy an upload to `target`, stopping once it passes `limit` bytes; returns the bytes copied."""
    size = 0
    upload.file.seek(0)
    with open(target, "wb") as out:
        while block := upload.file.read(1 << 20):
            size += len(block)
            if size > limit:
                break
            out.write(block)
    return size


def _limit(query, default: int, maximum: int = 100) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise OpenAIError(400, f"limit must be an integer from 1 to {maximum}, got '{raw}'", param="limit")
    return int(raw)


def _parse_job(raw: bytes) -> dict[str, Any]:
    body = parse_body(raw, JobCreateRequest, "'model' and 'training_file'")
    if body.integrations:
        raise OpenAIError(400, "integrations (Weights & Biases) are not supported; every job is tracked in MLflow",
                          param="integrations", code="invalid_value")
    if body.metadata is not None and (len(body.metadata) > 16 or any(len(k) > 64 or len(v) > 512
                                                                     for k, v in body.metadata.items())):
        raise OpenAIError(400, "metadata takes at most 16 keys of up to 64 characters, values of up to 512",
                          param="metadata", code="invalid_value")
    result = body.model_dump(exclude={"hyperparameters", "method"})
    result["hyperparameters"] = body.hyperparameters.checked() if body.hyperparameters else {}
    if body.method is not None:
        supervised = body.method.supervised
        result["method"] = {"type": body.method.type, "supervised": {
            "hyperparameters": supervised.hyperparameters.checked() if supervised and supervised.hyperparameters
            else {}}}
    return result

