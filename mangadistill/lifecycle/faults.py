"""Registry faults stop the life cycle; they never decide anything.

Only "this registered model does not exist" is an answer (an empty registry); every other error of the
model registry (a server that is down, a timeout, a refused permission, a 5xx) stops the step with one
`RegistryError` line (exit code 7) and changes nothing further. A move that was half done when the
fault hit is reported and repaired by the next run (`stages.sync_stage_mirrors`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from mlflow.exceptions import MlflowException

from mangadistill.errors import UserError

P = ParamSpec("P")
R = TypeVar("R")


class RegistryError(UserError):
    """The model registry failed to answer or refused a call; nothing was decided on that failure."""

    exit_code = 7


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:299] + "…"


def registry_guard(func: Callable[P, R]) -> Callable[P, R]:
    """Turn an MLflow registry failure inside `func` into a one-line `RegistryError` naming what was being done."""

    @functools.wraps(func)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UserError:
            raise
        except (MlflowException, ConnectionError, TimeoutError) as exc:
            raise RegistryError(
                f"model registry error during {func.__name__.strip('_').replace('_', ' ')}: {_first_line(exc)} "
                "(nothing further was changed; re-run when the registry answers: the next run reports and "
                "repairs a half-done move)") from None
        except Exception as exc:  # requests' connection errors do not derive from the builtins above
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise RegistryError(f"model registry unreachable during {func.__name__}: {_first_line(exc)} "
                                    "(nothing further was changed; re-run when the registry answers)") from None
            raise

    return guarded
