"""What failed inside a pipeline run, for `run.py`: a `UserError` raised in a step reaches the user as its
one line and exit code, not as "pipeline failed" (exit 1) after ZenML's traceback.

ZenML keeps each failed step's exception (message and traceback) in its store, wherever the step ran;
the exception's class is read from the traceback's last line and honoured only for this project's own
`UserError` subclasses.
"""

from __future__ import annotations

import importlib
import re

from mangadistill.errors import UserError

_LAST_LINE = re.compile(r"^(?P<path>mangadistill(?:\.\w+)+)\.(?P<name>\w+): ")
#: Exceptions of the tracking/registry client raised outside the life-cycle code (e.g. by ZenML's MLflow
#: tracker when the server is down): the registry failed, nothing was decided on it.
_REGISTRY_FAILURE = re.compile(r"^(mlflow\.exceptions\.\w+|requests\.exceptions\.\w+|urllib3\.exceptions\.\w+): ")


def _error_class(traceback: str) -> type[UserError] | None:
    """The project's `UserError` subclass named on the traceback's last line, or `RegistryError` for a
    tracking/registry client failure; None for anything else (a bug keeps exit 1 and its traceback)."""
    from mangadistill.lifecycle.faults import RegistryError

    lines = [line for line in traceback.strip().splitlines() if line and not line.startswith(" ")]
    if not lines:
        return None
    if _REGISTRY_FAILURE.match(lines[-1]):
        return RegistryError
    found = _LAST_LINE.match(lines[-1])
    if found is None:
        return None
    try:
        cls = getattr(importlib.import_module(found["path"]), found["name"])
    except (ImportError, AttributeError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, UserError) else None


def _as_user_error(traceback: str, message: str) -> UserError | None:
    cls = _error_class(traceback)
    if cls is None:
        return None
    from_client = _REGISTRY_FAILURE.match(traceback.strip().splitlines()[-1]) is not None
    return cls(f"model registry error: {message} (nothing was decided on it; re-run when the registry answers)"
               if from_client else message)


def user_error_of_last_run(pipeline_name: str) -> UserError | None:
    """The `UserError` a step of the newest run of `pipeline_name` failed with, if that is why it failed."""
    from zenml.client import Client

    runs = Client().list_pipeline_runs(pipeline_name=pipeline_name, sort_by="desc:created", size=1)
    if not runs.items:
        return None
    for step in runs.items[0].steps.values():
        info = getattr(step, "exception_info", None)
        if info is not None and info.traceback and (error := _as_user_error(info.traceback, info.message)):
            return error
    return None


def registry_unreachable(tracking_uri: str, timeout: float = 5.0) -> UserError | None:
    """A `RegistryError` when the tracking server at `tracking_uri` does not answer its health check now.

    Used when a step failed without a stored exception (ZenML's MLflow tracker failing before the step
    body ran, e.g. because the server went away mid-run): the failure is then blamed on the registry only
    if the registry really is unreachable. Local stores (``sqlite:``, ``file:``) are never "unreachable".
    """
    import urllib.error
    import urllib.request

    from mangadistill.lifecycle.faults import RegistryError

    if not tracking_uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            return None  # it answers (e.g. 401/404 on /health behind a proxy): not an outage
        reason = f"HTTP {exc.code}"
    except OSError as exc:
        reason = str(getattr(exc, "reason", exc))
    else:
        return None
    return RegistryError(f"model registry error: the tracking server {tracking_uri} stopped answering during the "
                         f"run ({reason}); nothing was decided on it; re-run when it answers (the next run reports "
                         "and repairs a half-done move)")
