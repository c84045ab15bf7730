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


def _error_class(traceback: str) -> type[UserError] | None:
    lines = [line for line in traceback.strip().splitlines() if line and not line.startswith(" ")]
    found = _LAST_LINE.match(lines[-1]) if lines else None
    if found is None:
        return None
    try:
        cls = getattr(importlib.import_module(found["path"]), found["name"])
    except (ImportError, AttributeError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, UserError) else None


def user_error_of_last_run(pipeline_name: str) -> UserError | None:
    """The `UserError` a step of the newest run of `pipeline_name` failed with, if that is why it failed."""
    from zenml.client import Client

    runs = Client().list_pipeline_runs(pipeline_name=pipeline_name, sort_by="desc:created", size=1)
    if not runs.items:
        return None
    for step in runs.items[0].steps.values():
        info = getattr(step, "exception_info", None)
        if info is not None and info.traceback and (cls := _error_class(info.traceback)) is not None:
            return cls(info.message)
    return None
