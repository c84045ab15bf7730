"""The model service: POST /predict, GET /health, GET /metrics, serving whatever the registry says.

The family of the served registered model answers each text (intent: ``{"intent", "confidence"}``).
A `RegistryFollower` polls the stage resolver (`mangadistill.lifecycle.stages.version_in_stage`) every
`poll_seconds`; when the alias points at a new version it loads that version in the background and
swaps the reference in one assignment, so requests in flight finish on the old model and no request
sees a half-loaded one. Moving the ``production`` alias in the MLflow UI therefore changes what is
served within ``poll_seconds`` + the load time, without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from mangadistill.lifecycle import stages
from mangadistill.lifecycle.loading import load_version
from mangadistill.lifecycle.record import VersionRecord, read_record
from mangadistill.serving.metrics import ServingMetrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingLimits:
    """Request limits; breaking one is a 4xx with a one-line message."""

    max_batch: int = 64
    max_chars: int = 1000
    max_body_bytes: int = 256_000


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: Any  # a family Predictor: .predict(list[str]) -> list[dict]
    loaded_at: float
    record: VersionRecord
    flag: str | None  # from the version's own record at load time (e.g. no passing gate record)


def load_registered(name: str, version: str) -> Any:
    """Load version `version` of `name` with the one loader (its family's predictor, from the artifact store)."""
    return load_version(name, version)


class RegistryFollower:
    """Holds the model of the version in `stage` and keeps it in step with the registry."""

    def __init__(self, model_name: str, stage: str = stages.PRODUCTION, tracking_uri: str | None = None,
                 poll_seconds: float = 2.0, loader: Callable[[str, str], Any] = load_registered) -> None:
        from mlflow.tracking import MlflowClient

        if tracking_uri:
            import mlflow

            mlflow.set_tracking_uri(tracking_uri)
        self.model_name, self.stage, self.poll_seconds = model_name, stage, poll_seconds
        self._client = MlflowClient(tracking_uri)
        self._loader = loader
        self.current: LoadedModel | None = None
        self.target_version: str | None = None
        self.last_poll: float | None = None
        self.last_error: str | None = None
        self.swaps = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Resolve the stage; load and swap in a new version. Returns True when the served version changed."""
        try:
            version = stages.version_in_stage(self._client, self.model_name, self.stage)
            self.last_poll, self.target_version = time.time(), version
            if version is None or (self.current is not None and self.current.version == version):
                self.last_error = None if version is not None else f"no '{self.stage}' alias on {self.model_name}"
                return False
            record = read_record(self._client, self.model_name, version)
            model = self._loader(self.model_name, version)  # slow part, outside any lock
            previous = self.current
            flag = stages.production_flag(record, version) if self.stage == stages.PRODUCTION else None
            self.current = LoadedModel(version, model, time.time(), record, flag)  # atomic swap
            self.swaps += previous is not None
            self.last_error = None
            logger.info("serving %s version %s (%s)", self.model_name, version,
                        "initial load" if previous is None else f"was {previous.version}")
            return True
        except Exception as exc:  # noqa: BLE001 - keep serving the last good model; report it on /health
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            logger.warning("registry poll failed: %s", self.last_error)
            return False

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="registry-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds + 5)


class PredictRequest(BaseModel):
    """Either one ``text`` or a batch of ``texts``."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, description="One query.")
    texts: list[str] | None = Field(None, description="A batch of queries.")


def _validate(body: PredictRequest, limits: ServingLimits) -> list[str]:
    if (body.text is None) == (body.texts is None):
        raise HTTPException(422, "send exactly one of 'text' (a string) or 'texts' (a list of strings)")
    texts = [body.text] if body.text is not None else body.texts
    if not texts:
        raise HTTPException(422, f"'texts' is empty; send 1 to {limits.max_batch} texts")
    if len(texts) > limits.max_batch:
        raise HTTPException(413, f"{len(texts)} texts in one request; the limit is {limits.max_batch}")
    for i, text in enumerate(texts):
        if not text.strip():
            raise HTTPException(422, f"text {i} is empty")
        if len(text) > limits.max_chars:
            raise HTTPException(413, f"text {i} has {len(text)} characters; the limit is {limits.max_chars}")
    return texts


def create_app(follower: RegistryFollower, limits: ServingLimits = ServingLimits(),
               inference_concurrency: int = 1) -> FastAPI:
    """The ASGI app. Inference runs in FastAPI's thread pool, at most `inference_concurrency` at a time
    (on a small CPU, queueing beats oversubscribing onnxruntime's own threads)."""
    metrics = ServingMetrics()
    gate = threading.Semaphore(inference_concurrency)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        follower.start()
        yield
        follower.stop()

    app = FastAPI(title=f"MangaAssist model service ({follower.model_name})", lifespan=lifespan)
    app.state.follower, app.state.metrics = follower, metrics

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limits.max_body_bytes:
            metrics.observe(request.url.path, 413)
            return JSONResponse({"error": f"request body of {size} bytes; the limit is {limits.max_body_bytes}"}, 413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        metrics.observe(request.url.path, 422)
        return JSONResponse({"error": f"{where}: {first['msg']}"}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        metrics.observe(request.url.path, exc.status_code)
        return JSONResponse({"error": exc.detail}, exc.status_code)

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict:
        texts = _validate(body, limits)
        current = follower.current  # one read: this request finishes on this model even if a swap happens
        if current is None:
            raise HTTPException(503, f"no model loaded yet ({follower.last_error or 'loading'})")
        started = time.perf_counter()
        with gate:
            predictions = current.model.predict(texts)
        latency_ms = (time.perf_counter() - started) * 1e3
        metrics.observe("/predict", 200, latency_ms, len(texts))
        common = {"model_name": follower.model_name, "model_version": current.version, "stage": follower.stage}
        if body.text is not None:
            return {**predictions[0], **common}
        return {"predictions": predictions, **common}

    @app.get("/health")
    def health() -> JSONResponse:
        current = follower.current
        in_step = current is not None and current.version == follower.target_version
        body = {
            "status": "ok" if in_step and not follower.last_error else ("degraded" if current else "unavailable"),
            "model_name": follower.model_name, "stage": follower.stage,
            "model_version": current.version if current else None,
            "registry_version": follower.target_version,
            "loaded_at": current.loaded_at if current else None, "last_poll_at": follower.last_poll,
            "poll_seconds": follower.poll_seconds, "last_error": follower.last_error,
            "gate_record": ("pass" if current.record.has_passing_gate_record else "missing") if current else None,
            "gates": current.record.gate_summary() if current else None,
            "flag": current.flag if current else None,
        }
        metrics.observe("/health", 200 if current else 503)
        return JSONResponse(body, 200 if current else 503)

    @app.get("/metrics")
    def metrics_page() -> PlainTextResponse:
        current = follower.current
        metrics.model_swaps = follower.swaps
        version = current.version if current else None
        return PlainTextResponse(metrics.render(follower.model_name, version, follower.stage))

    return app
