"""An ASGI app served by uvicorn on 127.0.0.1 in a background thread of this process.

Used where a real HTTP endpoint is the honest way to talk to something in-process: the reference teacher is
labelled through the official `openai` client against the project's own OpenAI-compatible server (one code
path for a local and a remote teacher), and tests use it for servers the client must reach over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class LoopbackServer:
    """uvicorn on an OS-chosen free port of 127.0.0.1; `url` is its base, e.g. ``http://127.0.0.1:PORT``."""

    def __init__(self, app: Any, *, lifespan: str = "off") -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="loopback-uvicorn", daemon=True)
        self.url = ""

    def start(self, timeout: float = 20.0) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serve(app: Any, *, lifespan: str = "off") -> Iterator[LoopbackServer]:
    """Serve `app` for the duration of the block (`lifespan="on"` runs the app's start-up and shutdown)."""
    server = LoopbackServer(app, lifespan=lifespan).start()
    try:
        yield server
    finally:
        server.stop()
