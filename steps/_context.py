"""What a step may ask of its ZenML context, tolerating a body run outside a pipeline (`.entrypoint()`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from zenml import get_step_context, log_metadata

#: Step-run metadata key holding the seconds a step spent in its own work (see `compute_timer`).
COMPUTE_SECONDS = "compute_seconds"


def _context():
    try:
        return get_step_context()
    except RuntimeError:  # called through .entrypoint(), e.g. in integration tests
        return None


def log_output_metadata(metadata: dict[str, Any], output_name: str | None = None) -> None:
    """Attach metadata to a step output (the only one, or `output_name`); nothing to attach outside a pipeline."""
    context = _context()
    if context is not None:
        context.add_output_metadata(metadata, output_name=output_name)


def run_label() -> str:
    """The pipeline run's name, used to label events; ``interactive`` outside a pipeline."""
    context = _context()
    return context.pipeline_run.name if context is not None else "interactive"


@contextmanager
def compute_timer() -> Iterator[None]:
    """Time the step's own work (data, training, evaluation, export) as step-run metadata `compute_seconds`.

    Everything else in a pipeline run (step launch, artifact materialization, tracking calls) is
    orchestration overhead; the benchmark reports it as a share of the run. One timer per step.
    """
    started = time.perf_counter()
    yield
    if _context() is not None:
        log_metadata(metadata={COMPUTE_SECONDS: time.perf_counter() - started})
