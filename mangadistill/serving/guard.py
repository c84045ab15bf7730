"""What every request meets before FastAPI parses anything (a plain ASGI middleware).

For the protected path (``/predict``), in this order: the API key when one is configured (401), the
content type (415), the body size, by ``content-length`` and by the bytes that actually arrive, so a
chunked body cannot slip past (413), and UTF-8 (400). The body read here is handed on to the app unchanged.
Every response, whatever produced it, is counted once in ``mangadistill_requests_total``. Every error is
``{"error": "<one line>"}``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from mangadistill.serving.metrics import ServingMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServingLimits:
    """Request limits; breaking one is a 4xx with a one-line message."""

    max_batch: int = 64
    max_chars: int = 1000
    max_body_bytes: int = 256_000


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def error_body(message: str) -> bytes:
    """The one error shape: ``{"error": "<one line>"}``."""
    return json.dumps({"error": " ".join(str(message).split())}).encode()


def authorized(header: str | None, api_key: str) -> bool:
    """True when `header` (as ASGI gives it, bytes read as latin-1) is ``Bearer <api_key>``; the key's UTF-8
    bytes are compared in constant time."""
    scheme, _, token = (header or "").strip().partition(" ")
    try:
        sent = token.strip().encode("latin-1")  # the bytes on the wire
    except UnicodeEncodeError:
        return False
    return scheme.lower() == "bearer" and hmac.compare_digest(sent, api_key.encode())


class RequestGuard:
    """ASGI middleware: API key, content type, body size and encoding of the protected path; counts responses."""

    def __init__(self, app: ASGIApp, *, metrics: ServingMetrics, limits: ServingLimits, api_key: str | None = None,
                 protected: tuple[str, ...] = ("/predict",)) -> None:
        self.app, self.metrics, self.limits, self.api_key, self.protected = app, metrics, limits, api_key, protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            if scope["path"] in self.protected:
                try:
                    receive = await self._check(scope, receive)
                except _Refused as refused:
                    await _send_error(counted_send, refused)
                    return
            await self.app(scope, receive, counted_send)
        finally:  # an exception that escapes the app becomes a 500 one level up
            self.metrics.count_response(scope["path"], status[0] if status else 500)

    async def _check(self, scope: Scope, receive: Receive) -> Receive:
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if self.api_key is not None and not authorized(headers.get("authorization"), self.api_key):
            raise _Refused(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           {"www-authenticate": "Bearer"})
        if scope["method"] != "POST":
            return receive  # the router answers 405
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if not (content_type == "application/json" or content_type.endswith("+json")):
            raise _Refused(415, f"content-type '{content_type or 'none'}' is not JSON; "
                           "send a JSON body with 'content-type: application/json'")
        limit = self.limits.max_body_bytes
        size = headers.get("content-length", "")
        if size.isdigit() and int(size) > limit:
            raise _Refused(413, f"request body of {size} bytes; the limit is {limit}")
        body = await _read_body(receive, limit)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refused(400, f"request body is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8") \
                from None
        return _replay(body, receive)


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refused with a 413 as soon as more than `limit` bytes have arrived."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "client disconnected before the body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refused(413, f"request body of more than {limit} bytes; the limit is {limit}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body read already, then whatever the connection says next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def _send_error(send: Send, refused: _Refused) -> None:
    body = error_body(refused.message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *((key.encode(), value.encode()) for key, value in refused.headers.items())]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
