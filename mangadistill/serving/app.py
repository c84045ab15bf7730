"""The model service: POST /predict, GET /health, GET /metrics, serving whatever the registry says; for a
family whose models answer chats (the responder), also the OpenAI-compatible ``GET /v1/models`` and
``POST /v1/chat/completions`` (streaming too) under the registered model's name; for a family whose models
rerank (the reranker), ``POST /v1/rerank``: a query and its candidates in, scores and their order out.

The family of the served registered model answers each text (intent: ``{"intent", "confidence"}``).
A `RegistryFollower` (`mangadistill.serving.follower`) keeps the served version in step with the
``production`` alias without a restart; a version that does not load is never swapped in. Requests pass
the `RequestGuard` (API key, content type, body size, UTF-8) and then the body's own validation; every
error, whatever its status, is ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mangadistill.serving.follower import RegistryFollower
from mangadistill.serving.guard import RequestGuard, ServingLimits, error_body
from mangadistill.serving.metrics import ServingMetrics
from mangadistill.serving.openai_chat import chat_router

logger = logging.getLogger(__name__)


class PredictRequest(BaseModel):
    """Either one ``text`` or a batch of ``texts``."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, description="One query.")
    texts: list[str] | None = Field(None, description="A batch of queries.")


class RerankRequest(BaseModel):
    """One query and the candidate passages to order."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="The shopper's query.")
    candidates: list[str] = Field(description="Candidate passages (e.g. a first-stage retriever's top K).")
    top_n: int | None = Field(None, ge=1, description="Return only the best top_n in `results` (default: all).")


def _check_text(text: str, what: str, limits: ServingLimits) -> None:
    if not text.strip():
        raise HTTPException(422, f"{what} is empty")
    if len(text) > limits.max_chars:
        raise HTTPException(413, f"{what} has {len(text)} characters; the limit is {limits.max_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # e.g. "\ud800" escaped in JSON: a lone surrogate, not a character
        raise HTTPException(422, f"{what} has an unpaired surrogate at character {exc.start}; send valid Unicode") from None


def _validate(body: PredictRequest, limits: ServingLimits) -> list[str]:
    if (body.text is None) == (body.texts is None):
        raise HTTPException(422, "send exactly one of 'text' (a string) or 'texts' (a list of strings)")
    texts = [body.text] if body.text is not None else body.texts
    if not texts:
        raise HTTPException(422, f"'texts' is empty; send 1 to {limits.max_batch} texts")
    if len(texts) > limits.max_batch:
        raise HTTPException(413, f"{len(texts)} texts in one request; the limit is {limits.max_batch}")
    for i, text in enumerate(texts):
        _check_text(text, f"text {i}", limits)
    return texts


def _validation_error(exc: RequestValidationError) -> tuple[int, str]:
    """Status and one-line message for the first thing wrong with the body."""
    first = exc.errors()[0]
    where = [str(part) for part in first["loc"] if part != "body"]
    if first["type"] == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", first["msg"])
        return 400, f"request body is not valid JSON (at character {where[0] if where else '?'}: {detail})"
    if not where:
        if first["type"] == "missing":
            return 422, "request body is empty; send a JSON object with 'text' or 'texts'"
        return 422, "request body must be a JSON object with 'text' (a string) or 'texts' (a list of strings)"
    return 422, f"{'.'.join(where)}: {first['msg']}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message), status, headers=headers, media_type="application/json")


def create_app(follower: RegistryFollower, limits: ServingLimits = ServingLimits(),
               inference_concurrency: int = 1, api_key: str | None = None) -> FastAPI:
    """The ASGI app. Inference runs in FastAPI's thread pool, at most `inference_concurrency` at a time
    (on a small CPU, queueing beats oversubscribing onnxruntime's own threads). With `api_key`, /predict
    requires ``Authorization: Bearer <api_key>``; /health and /metrics stay open."""
    metrics = ServingMetrics(follower)
    gate = threading.Semaphore(inference_concurrency)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        follower.start()
        yield
        follower.stop()

    app = FastAPI(title=f"MangaAssist model service ({follower.model_name})", lifespan=lifespan)
    app.state.follower, app.state.metrics = follower, metrics
    app.add_middleware(RequestGuard, metrics=metrics, limits=limits, api_key=api_key, protected=("/predict", "/v1/rerank"))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return _error(*_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException and the router's 404 / 405
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"the server failed on this request ({type(exc).__name__}); see the server log")

    def chat_models() -> dict:
        """The production version under the registered model's name, when its family answers chats."""
        current = follower.current
        if current is None or not callable(getattr(current.model, "complete", None)):
            return {}
        return {follower.model_name: current.model}

    app.include_router(chat_router(chat_models, api_key=api_key))

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict:
        texts = _validate(body, limits)
        current = follower.current  # one read: this request finishes on this model even if a swap happens
        if current is None:
            raise HTTPException(503, f"no model loaded yet ({follower.last_error or 'loading'})")
        started = time.perf_counter()
        with gate:
            predictions = current.model.predict(texts)
        metrics.observe_prediction(time.perf_counter() - started, len(texts))
        common = {"model_name": follower.model_name, "model_version": current.version, "stage": follower.stage}
        if body.text is not None:
            return {**predictions[0], **common}
        return {"predictions": predictions, **common}

    @app.post("/v1/rerank")
    def rerank(body: RerankRequest) -> dict:
        """Scores of the candidates (in their order), `order` (indices best first) and the best `top_n` results."""
        current = follower.current
        if current is None:
            raise HTTPException(503, f"no model loaded yet ({follower.last_error or 'loading'})")
        if not callable(getattr(current.model, "rerank", None)):
            raise HTTPException(404, f"'{follower.model_name}' is not a reranker (family "
                                f"{current.record.family}); POST /predict instead")
        _check_text(body.query, "query", limits)
        if not body.candidates:
            raise HTTPException(422, f"'candidates' is empty; send 1 to {limits.max_batch} passages")
        if len(body.candidates) > limits.max_batch:
            raise HTTPException(413, f"{len(body.candidates)} candidates in one request; the limit is {limits.max_batch}")
        for i, text in enumerate(body.candidates):
            _check_text(text, f"candidate {i}", limits)
        started = time.perf_counter()
        with gate:
            scores, order = current.model.rerank(body.query, body.candidates)
        metrics.observe_prediction(time.perf_counter() - started, len(body.candidates))
        best = order[: body.top_n] if body.top_n else order
        return {"scores": scores, "order": order, "results": [{"index": i, "score": scores[i]} for i in best],
                "model_name": follower.model_name, "model_version": current.version, "stage": follower.stage}

    @app.get("/health")
    def health() -> JSONResponse:
        current = follower.current
        body = {
            "status": follower.status, "model_name": follower.model_name, "stage": follower.stage,
            "model_version": current.version if current else None,
            "registry_version": follower.target_version,
            "loaded_at": current.loaded_at if current else None, "last_poll_at": follower.last_poll,
            "poll_seconds": follower.poll_seconds, "last_error": follower.last_error,
            "swaps": follower.swaps, "swap_failures": follower.swap_failures,
            "gate_record": current.gate_record if current else None,
            "gates": current.record.gate_summary() if current else None,
            "flag": current.flag if current else None,
        }
        return JSONResponse(body, 200 if current else 503)

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return app
