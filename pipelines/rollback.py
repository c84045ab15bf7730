"""`rollback`: move a family's production back by hand, to last-known-good or `--version N`.

`rollback_intent` is the same pipeline under the intent family's name (its own MLflow experiment).
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import RollbackConfig
from steps import rollback_production


@pipeline
def rollback(config: RollbackConfig) -> None:
    """The manual rollback: one registry move, recorded on both versions."""
    rollback_production(config.registered_model, config.reason, config.candidate_version)


def run_outputs(run: Any) -> dict[str, Any]:
    return {"rollback": run.steps["rollback_production"].outputs["rollback"][0].load()}


def summary(run: Any) -> list[Any]:
    from pipelines._promotion_tables import stage_table

    result = run_outputs(run)["rollback"]
    return [f"ROLLED BACK: {result['move']}", *result["flags"], stage_table(result["model_name"], result["stages"])]
