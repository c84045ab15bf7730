"""Keep the served model in step with the registry: the `production` alias decides, a broken version never serves.

A `RegistryFollower` asks the one stage resolver (`mangadistill.lifecycle.stages.version_in_stage`) every
`poll_seconds`. When the alias points at a new version it loads that version with the one loader
(`mangadistill.lifecycle.loading.load_version`) beside the old one, asks it one warm-up query, and swaps the
reference in one assignment: requests in flight finish on the old model and no request sees a half-loaded
one. A version that fails to load or to answer is never swapped in: the old one keeps serving, the status
is ``degraded`` with the reason in `last_error`, `swap_failures` counts it, and the same version is tried
again only after `retry_failed_seconds` (or at once when the alias moves elsewhere and back).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlflow.tracking import MlflowClient

from mangadistill.lifecycle import stages
from mangadistill.lifecycle.loading import load_version
from mangadistill.lifecycle.record import VersionRecord, read_record

logger = logging.getLogger(__name__)

#: The query a freshly loaded version must answer before it is swapped in (any family takes text).
WARMUP_TEXT = "hello"


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: Any  # a family Predictor: .predict(list[str]) -> list[dict]
    loaded_at: float
    record: VersionRecord
    flag: str | None  # from the version's own record at load time (e.g. no passing gate record)

    @property
    def gate_record(self) -> str:
        """``pass`` (every required gate set passed), ``fail`` (a gate set failed) or ``missing``."""
        if self.record.has_passing_gate_record:
            return "pass"
        return "fail" if any(not gates.passed for gates in self.record.gates.values()) else "missing"


def load_registered(name: str, version: str) -> Any:
    """Load version `version` of `name` with the one loader (its family's predictor, from the artifact store)."""
    return load_version(name, version)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    text = str(exc).strip()
    line = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    return line if len(line) <= 300 else line[:299] + "…"


class RegistryFollower:
    """Holds the model of the version in `stage` and keeps it in step with the registry."""

    def __init__(self, model_name: str, stage: str = stages.PRODUCTION, tracking_uri: str | None = None,
                 poll_seconds: float = 2.0, loader: Callable[[str, str], Any] = load_registered,
                 retry_failed_seconds: float = 30.0) -> None:
        if tracking_uri:
            import mlflow

            mlflow.set_tracking_uri(tracking_uri)
        self.model_name, self.stage, self.poll_seconds = model_name, stage, poll_seconds
        self.retry_failed_seconds = retry_failed_seconds
        self._client = MlflowClient(tracking_uri)
        self._loader = loader
        self.current: LoadedModel | None = None
        self.target_version: str | None = None
        self.last_poll: float | None = None
        self.last_error: str | None = None
        self.swaps = 0  # a new version replaced the served one
        self.swap_failures = 0  # a version the alias pointed at did not load or answer; not swapped in
        self._failed: tuple[str, float] | None = None  # (version, when) of the last failed load
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> str:
        """``ok`` (serving the alias's version, no error), ``degraded`` (serving, but not what the registry
        says, or the last poll failed) or ``unavailable`` (nothing loaded)."""
        current = self.current
        if current is None:
            return "unavailable"
        return "ok" if current.version == self.target_version and self.last_error is None else "degraded"

    def refresh(self) -> bool:
        """Resolve the stage; load and swap in a new version. Returns True when the served version changed."""
        try:
            version = stages.version_in_stage(self._client, self.model_name, self.stage)
        except Exception as exc:  # noqa: BLE001 - keep serving the last good model; report it on /health
            self.last_error = f"registry poll failed: {one_line(exc)}{self._still_serving()}"
            logger.warning(self.last_error)
            return False
        self.last_poll, self.target_version = time.time(), version
        if version is None:
            self.last_error = f"no '{self.stage}' alias on {self.model_name}{self._still_serving()}"
            return False
        if self.current is not None and self.current.version == version:
            self.last_error, self._failed = None, None
            return False
        if self._failed is not None and self._failed[0] == version \
                and time.time() - self._failed[1] < self.retry_failed_seconds:
            return False  # last_error still says why; retried after retry_failed_seconds
        try:
            loaded = self._load(version)  # slow part, outside any lock; the old model keeps serving
        except Exception as exc:  # noqa: BLE001 - a broken version must not take the service down
            self.swap_failures += 1
            self._failed = (version, time.time())
            self.last_error = f"version {version} did not load: {one_line(exc)}{self._still_serving()}"
            logger.error("%s (retry in %.0f s or when the alias moves)", self.last_error, self.retry_failed_seconds)
            return False
        previous = self.current
        self.current = loaded  # atomic swap
        self.swaps += previous is not None
        self.last_error, self._failed = None, None
        logger.info("serving %s version %s (%s)%s", self.model_name, version,
                    "initial load" if previous is None else f"was {previous.version}",
                    f"; FLAG: {loaded.flag}" if loaded.flag else "")
        return True

    def _load(self, version: str) -> LoadedModel:
        record = read_record(self._client, self.model_name, version)
        model = self._loader(self.model_name, version)
        answer = model.predict([WARMUP_TEXT])
        if not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], dict):
            raise TypeError(f"warm-up query answered {type(answer).__name__}, not a list with one dict")
        flag = stages.production_flag(record, version) if self.stage == stages.PRODUCTION else None
        return LoadedModel(version, model, time.time(), record, flag)

    def _still_serving(self) -> str:
        current = self.current
        return f"; still serving version {current.version}" if current is not None else "; nothing to serve"

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
