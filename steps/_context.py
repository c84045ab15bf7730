"""What a step may ask of its ZenML context, tolerating a body run outside a pipeline (`.entrypoint()`)."""

from __future__ import annotations

from typing import Any

from zenml import get_step_context


def _context():
    try:
        return get_step_context()
    except RuntimeError:  # called through .entrypoint(), e.g. in integration tests
        return None


def log_output_metadata(metadata: dict[str, Any], output_name: str | None = None) -> None:
    """Attach metadata to an output artifact (name it when the step has several); nothing outside a pipeline."""
    context = _context()
    if context is not None:
        context.add_output_metadata(metadata, output_name=output_name)


def run_label() -> str:
    """The pipeline run's name, used to label events; ``interactive`` outside a pipeline."""
    context = _context()
    return context.pipeline_run.name if context is not None else "interactive"
