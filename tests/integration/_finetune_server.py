"""Helpers for the fine-tuning server's tests: chat training files, polling through the `openai` client,
OpenAI's error shape, and `run.py --serve openai` as a subprocess that a test can SIGKILL and start again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pydantic
import yaml
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from tests.e2e._cli import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = PROJECT_ROOT / "configs" / "serve_openai_smoke.yaml"
BASE_MODEL = "tiny-llama"  # the smoke config's tiny random Llama
TERMINAL = ("succeeded", "failed", "cancelled")
_NOT_CHECKED = object()

T = TypeVar("T")


def chat_examples(count: int, start: int = 0) -> list[dict[str, Any]]:
    """`count` distinct MangaAssist examples: system, user, assistant."""
    series = ("One Piece", "Naruto", "Berserk", "Frieren", "Chainsaw Man", "Mushishi")
    return [{"messages": [
        {"role": "system", "content": "You are MangaAssist, a manga shop's assistant."},
        {"role": "user", "content": f"Is volume {i % 40 + 1} of {series[i % len(series)]} in stock?"},
        {"role": "assistant", "content": f"Yes: volume {i % 40 + 1} of {series[i % len(series)]} ships in "
                                         f"{i % 5 + 1} days."},
    ]} for i in range(start, start + count)]


def jsonl(examples: Iterable[Any], *, ensure_ascii: bool = True) -> bytes:
    return "".join(json.dumps(e, ensure_ascii=ensure_ascii) + "\n" for e in examples).encode("utf-8")


def unknown_fields(model: pydantic.BaseModel, path: str = "") -> list[str]:
    """Fields of the JSON that the SDK's model does not declare (it keeps them as extras), at any depth."""
    found = [path + name for name in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, pydantic.BaseModel):
                found += unknown_fields(item, f"{path}{name}.")
    return found


def validated(raw: Any, model: type[pydantic.BaseModel], *, extras: tuple[str, ...] = ()) -> Any:
    """A ``with_raw_response`` answer's JSON validated by the SDK's own `model` (every warning an error, no
    field the model does not declare but `extras`), after checking that the SDK's own `parse()` reads it
    without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a field of the wrong type warns when the SDK's model is dumped
        raw.parse().model_dump()
        strict = model.model_validate(raw.http_response.json())
    assert set(unknown_fields(strict)) <= set(extras), unknown_fields(strict)
    return strict


def validated_page(raw: Any, model: type[pydantic.BaseModel], *, cursor: bool = True,
                   extras: tuple[str, ...] = ()) -> tuple[dict[str, Any], list]:
    """(the page's JSON, its items validated by the SDK's `model`) for a list answer: ``object`` "list", a
    boolean ``has_more`` on cursor pages, and the SDK's own page holding the same items."""
    body = raw.http_response.json()
    assert body["object"] == "list" and isinstance(body["data"], list), body
    if cursor:
        assert isinstance(body["has_more"], bool), body
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = raw.parse()
        page.model_dump()
        items = [model.model_validate(item) for item in body["data"]]
    assert all(set(unknown_fields(item)) <= set(extras) for item in items), [unknown_fields(i) for i in items]
    assert [item.id for item in page.data] == [item.id for item in items]
    return body, items


def wait_for(condition: Callable[[], T], *, timeout: float, what: str, every: float = 0.2) -> T:
    """`condition()`'s first truthy value, asked every `every` seconds; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)


def finished(client: openai.OpenAI, job_id: str, timeout: float) -> FineTuningJob:
    """The job once its status is terminal."""
    return wait_for(lambda: (job := client.fine_tuning.jobs.retrieve(job_id)).status in TERMINAL and job,
                    timeout=timeout, what=f"job {job_id} to finish")


def events(client: openai.OpenAI, job_id: str) -> list[FineTuningJobEvent]:
    """Every event of the job, oldest first (the server lists newest first; the SDK follows the pages)."""
    return list(reversed(list(client.fine_tuning.jobs.list_events(job_id, limit=100))))


def messages(client: openai.OpenAI, job_id: str) -> list[str]:
    return [event.message for event in events(client, job_id)]


def last_step(client: openai.OpenAI, job_id: str) -> int:
    """The highest training step a ``metrics`` event of the job has reported (0 before the first)."""
    return max((int(e.data["step"]) for e in client.fine_tuning.jobs.list_events(job_id, limit=10).data
                if e.type == "metrics"), default=0)


def openai_error(exc: openai.APIStatusError, status: int, *, param: Any = _NOT_CHECKED,
                 code: Any = _NOT_CHECKED) -> dict[str, Any]:
    """The body's ``error`` after checking OpenAI's shape, the status, a one-line message, and `param`/`code`."""
    body = exc.response.json()
    assert exc.status_code == status, body
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"].strip(), body
    assert "\n" not in error["message"], error["message"]
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error"), body
    if param is not _NOT_CHECKED:
        assert error["param"] == param, body
    if code is not _NOT_CHECKED:
        assert error["code"] == code, body
    assert (exc.type, exc.param, exc.code) == (error["type"], error["param"], error["code"])  # what the SDK read
    return error


def write_config(path: Path, *, root: Path, base_source: Path | None = None) -> Path:
    """A YAML extending the smoke config, with its state under `root` (and the tiny model's tokenizer read from
    the prepared model folder `base_source`, which saves the ~8 s GGUF read)."""
    layer: dict[str, Any] = {"extends": str(SMOKE_CONFIG), "root": str(root)}
    if base_source is not None:
        layer["base_models"] = {BASE_MODEL: {"source": str(base_source)}}
    path.write_text(yaml.safe_dump(layer), encoding="utf-8")
    return path


class ServerProcess:
    """``python run.py --serve openai`` on one loopback port, in a process group of its own, logging to a file
    (a pipe nobody reads would stall the server)."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config, self.env, self.log = config, env, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start it and return once ``GET /health`` answers 200."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "run.py"), "--serve", "openai", "--config", str(self.config),
                 "--port", str(self.port)],
                cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, f"the server exited with {self.process.returncode}: {self.tail()}"
            assert time.monotonic() < deadline, f"the server did not answer in {timeout:.0f} s: {self.tail()}"
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the server's process group (no clean-up runs), then reap it."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""
