"""`rollback_intent`: move production back by hand, to last-known-good or `--version N`."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import RollbackIntentConfig
from steps import rollback_production


@pipeline
def rollback_intent(config: RollbackIntentConfig) -> None:
    """The manual rollback: one registry move, recorded on both versions."""
    rollback_production(config.model_name, config.reason, config.candidate_version)


def run_outputs(run: Any) -> dict[str, Any]:
    return {"rollback": run.steps["rollback_production"].outputs["rollback"][0].load()}


def summary(run: Any) -> list[Any]:
    from pipelines._promotion_tables import stage_table

    result = run_outputs(run)["rollback"]
    return [f"ROLLED BACK: {result['move']}", *result["flags"], stage_table(result["model_name"], result["stages"])]
