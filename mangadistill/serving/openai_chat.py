"""An OpenAI-compatible chat API over any `ChatModel`: ``GET /v1/models``, ``GET /v1/models/{id}`` and
``POST /v1/chat/completions`` (plain, or streamed as server-sent ``chat.completion.chunk`` events ending
with ``data: [DONE]``).

`chat_router` is an `APIRouter` to mount into another FastAPI app; it answers its own errors in OpenAI's
shape, ``{"error": {"message", "type", "param", "code"}}``, whatever the host app's handlers do: 401 for a
missing or wrong Bearer key (when `api_key` is set), 404 ``model_not_found``, 400 ``invalid_request_error``
for a body that is not a valid request, 413 for a body over `ChatLimits.max_body_bytes`, 500 ``server_error``
when a model fails. `create_chat_app` wraps it in an app of its own. The served models come from a callable
read on every request (a `ModelHolder`, say), so the set can change without a restart.

Inference is blocking, so it runs in the thread pool, at most `ChatLimits.max_concurrency` at a time.
`ChatModel.stream` reports no token counts or finish reason: a streamed answer ends with ``finish_reason:
"stop"``, and ``stream_options.include_usage`` is refused (ask without streaming for usage).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mangadistill.response.chat import ChatModel, ChatResult
from mangadistill.serving.guard import authorized

logger = logging.getLogger(__name__)

ModelSource = Callable[[], Mapping[str, ChatModel]]
BodyT = TypeVar("BodyT", bound=BaseModel)
OWNER = "mangadistill"


@dataclass(frozen=True)
class ChatLimits:
    """Request limits of the chat API; breaking one is a 4xx in OpenAI's error shape."""

    max_body_bytes: int = 1_000_000
    max_messages: int = 64
    max_tokens: int = 2048  # the most a request may ask for
    default_max_tokens: int = 512  # when a request does not say
    max_concurrency: int = 2  # model calls running at once (the rest queue)


class ModelHolder:
    """A thread-safe, mutable name -> `ChatModel` table; call it for a snapshot (a `ModelSource`)."""

    def __init__(self, models: Mapping[str, ChatModel] | None = None) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ChatModel] = dict(models or {})

    def __call__(self) -> dict[str, ChatModel]:
        with self._lock:
            return dict(self._models)

    def set(self, name: str, model: ChatModel) -> None:
        """Serve `model` as `name` from the next request on (replacing any model of that name)."""
        with self._lock:
            self._models[name] = model

    def remove(self, name: str) -> None:
        """Stop serving `name` (requests already running finish on it)."""
        with self._lock:
            self._models.pop(name, None)


class OpenAIError(Exception):
    """An error answered in OpenAI's JSON shape."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": " ".join(self.message.split()), "type": self.type, "param": self.param,
                          "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers=self.headers)


class _TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. "name" is allowed and not used
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat-completions body this server honours; any other field is a 400."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    n: int | None = Field(None, ge=1, le=1)
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    user: str | None = None  # bookkeeping only
    metadata: dict[str, str] | None = None  # bookkeeping only


def chat_router(models: ModelSource, *, api_key: str | None = None, limits: ChatLimits = ChatLimits()) -> APIRouter:
    """The ``/v1`` chat routes over whatever `models()` returns at each request."""
    router = APIRouter()
    gate = threading.BoundedSemaphore(limits.max_concurrency)
    started = int(time.time())

    @router.get("/v1/models")
    def list_models(request: Request) -> Response:
        try:
            check_key(request, api_key)
            return JSONResponse({"object": "list", "data": [_model_card(name, started) for name in sorted(models())]})
        except OpenAIError as error:
            return error.response()

    @router.get("/v1/models/{model_id:path}")
    def retrieve_model(model_id: str, request: Request) -> Response:
        try:
            check_key(request, api_key)
            available = models()
            if model_id not in available:  # a membership test: no model is loaded to answer it
                _lookup(available, model_id)
            return JSONResponse(_model_card(model_id, started))
        except OpenAIError as error:
            return error.response()

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            check_key(request, api_key)
            body = _parse(await read_body(request, limits.max_body_bytes), limits)
            model = _lookup(models(), body.model)
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
            max_tokens = body.max_completion_tokens or body.max_tokens or limits.default_max_tokens
            temperature = 1.0 if body.temperature is None else body.temperature
            if body.stream:
                chunks = _stream_events(model, body.model, messages, max_tokens, temperature, gate)
                return StreamingResponse(chunks, media_type="text/event-stream", headers={"cache-control": "no-cache"})
            result = await run_in_threadpool(_complete, model, messages, max_tokens, temperature, gate)
            return JSONResponse(_completion(body.model, result))
        except OpenAIError as error:
            return error.response()

    return router


def create_chat_app(models: Mapping[str, ChatModel] | ModelSource, api_key: str | None = None,
                    limits: ChatLimits = ChatLimits()) -> FastAPI:
    """A stand-alone app serving `chat_router`; a plain mapping is wrapped in a `ModelHolder`
    (``app.state.models``). Unknown paths and methods also answer in OpenAI's error shape."""
    source = models if callable(models) else ModelHolder(models)
    app = FastAPI(title="MangaAssist OpenAI-compatible chat API")
    app.state.models = source
    app.include_router(chat_router(source, api_key=api_key, limits=limits))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = f"{exc.detail}: {request.method} {request.url.path}"
        return OpenAIError(exc.status_code, message, code=None, headers=exc.headers).response()

    return app


def check_key(request: Request, api_key: str | None) -> None:
    """A 401 in OpenAI's shape unless the request carries ``Authorization: Bearer <api_key>`` (when set)."""
    if api_key is not None and not authorized(request.headers.get("authorization"), api_key):
        raise OpenAIError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                          code="invalid_api_key", headers={"www-authenticate": "Bearer"})


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 by its content-length or as soon as more than `limit` bytes arrive."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OpenAIError(413, f"request body of {declared} bytes; the limit is {limit}", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OpenAIError(413, f"request body of more than {limit} bytes; the limit is {limit}",
                              code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes, model: type[BodyT], needs: str) -> BodyT:
    """A JSON request body validated by `model`, or a 400 in OpenAI's shape naming the first offending parameter
    (`needs` says what a valid body holds, e.g. "'model' and 'messages'")."""
    try:
        data = json.loads(raw)
    except ValueError as exc:  # also bad UTF-8
        raise OpenAIError(400, f"request body is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(data, dict):
        raise OpenAIError(400, f"request body must be a JSON object with {needs}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        if first["type"] == "extra_forbidden":
            supported = sorted(model.model_fields)
            message, code = f"unsupported parameter '{param}'; this server supports {supported}", "unknown_parameter"
        else:
            message, code = (f"{param}: {first['msg']}" if param else first["msg"]), "invalid_value"
        raise OpenAIError(400, message, param=param, code=code) from None


def _parse(raw: bytes, limits: ChatLimits) -> ChatCompletionRequest:
    """The validated body, or a 400 naming the first offending parameter."""
    body = parse_body(raw, ChatCompletionRequest, "'model' and 'messages'")
    _check_limits(body, limits)
    return body


def _check_limits(body: ChatCompletionRequest, limits: ChatLimits) -> None:
    if len(body.messages) > limits.max_messages:
        raise OpenAIError(400, f"{len(body.messages)} messages; the limit is {limits.max_messages}", param="messages")
    for name in ("max_completion_tokens", "max_tokens"):
        value = getattr(body, name)
        if value is not None and value > limits.max_tokens:
            raise OpenAIError(400, f"{name} is {value}; the limit is {limits.max_tokens}", param=name)
    if body.stream_options is not None and not body.stream:
        raise OpenAIError(400, "stream_options is only allowed with stream: true", param="stream_options")
    if body.stream_options is not None and body.stream_options.include_usage:
        raise OpenAIError(400, "stream_options.include_usage is not supported: streamed answers carry no token "
                          "counts here; ask without streaming for usage", param="stream_options.include_usage")


def _lookup(models: Mapping[str, ChatModel], name: str) -> ChatModel:
    model = models.get(name)
    if model is None:
        raise OpenAIError(404, f"the model '{name}' does not exist; served models: {sorted(models)}", param="model",
                          code="model_not_found")
    return model


def _model_card(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": OWNER}


def _complete(model: ChatModel, messages: list[dict[str, str]], max_tokens: int, temperature: float,
              gate: threading.BoundedSemaphore) -> ChatResult:
    """Run `model.complete` in this worker thread, at most `max_concurrency` at once; a failure is a 500."""
    with gate:
        try:
            return model.complete(messages, max_tokens=max_tokens, temperature=temperature)
        except Exception as exc:
            logger.error("chat model %s failed", model.name, exc_info=exc)  # the messages are not logged
            raise _server_error(exc) from exc


def _completion(model_name: str, result: ChatResult) -> dict[str, Any]:
    """The ``chat.completion`` object of one result."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text, "refusal": None},
                     "logprobs": None, "finish_reason": result.finish_reason}],
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                  "total_tokens": result.prompt_tokens + result.completion_tokens},
    }


async def _stream_events(model: ChatModel, model_name: str, messages: list[dict[str, str]], max_tokens: int,
                         temperature: float, gate: threading.BoundedSemaphore) -> AsyncIterator[str]:
    """SSE ``chat.completion.chunk`` events: the role, each piece of text, the finish reason, ``[DONE]``.
    A model failure mid-stream is sent as an ``{"error": ...}`` event (the SDK raises it) and ends the stream."""
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model_name,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        return f"data: {json.dumps(chunk)}\n\n"

    held = threading.Event()  # set in the worker thread, so a cancellation cannot lose the slot

    def acquire() -> None:
        gate.acquire()
        held.set()

    pieces: Iterator[str] | None = None
    try:
        await run_in_threadpool(acquire)
        pieces = await run_in_threadpool(_start_stream, model, messages, max_tokens, temperature)
        yield event({"role": "assistant", "content": ""})
        while (piece := await run_in_threadpool(_next_piece, model, pieces)) is not None:
            if piece:
                yield event({"content": piece})
        yield event({}, "stop")
        yield "data: [DONE]\n\n"
    except OpenAIError as error:
        yield f"data: {json.dumps(error.body())}\n\n"
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:  # a generator model: run its clean-up now (client gone or stream done)
            close()
        if held.is_set():
            gate.release()


def _start_stream(model: ChatModel, messages: list[dict[str, str]], max_tokens: int,
                  temperature: float) -> Iterator[str]:
    try:
        return iter(model.stream(messages, max_tokens=max_tokens, temperature=temperature))
    except Exception as exc:
        logger.error("chat model %s failed to start a stream", model.name, exc_info=exc)
        raise _server_error(exc) from exc


def _next_piece(model: ChatModel, pieces: Iterator[str]) -> str | None:
    """The next piece of a stream, None at its end; a failure is a 500-shaped error."""
    try:
        return next(pieces, None)
    except Exception as exc:
        logger.error("chat model %s failed mid-stream", model.name, exc_info=exc)
        raise _server_error(exc) from exc


def _server_error(exc: Exception) -> OpenAIError:
    return OpenAIError(500, f"the model failed on this request ({type(exc).__name__}); see the server log",
                       type="server_error")
