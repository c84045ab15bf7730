"""`rollback_intent`: the family-generic manual rollback (`pipelines.rollback`) for the intent family."""

from __future__ import annotations

from zenml import pipeline

from mangadistill.config import RollbackConfig
from pipelines.rollback import run_outputs, summary
from steps import rollback_production


@pipeline
def rollback_intent(config: RollbackConfig) -> None:
    """The manual rollback of the intent model: one registry move, recorded on both versions."""
    rollback_production(config.registered_model, config.reason, config.candidate_version)


__all__ = ["rollback_intent", "run_outputs", "summary"]
