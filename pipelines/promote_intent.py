"""`promote_intent`: the family-generic promotion (`pipelines.promote`) as the intent family runs it."""

from __future__ import annotations

from zenml import pipeline

from mangadistill.config import PromoteConfig
from pipelines.promote import exit_code, promotion_steps, run_outputs, summary


@pipeline
def promote_intent(config: PromoteConfig) -> None:
    """Gate the newest (or the given) intent student and walk it through the registry stages."""
    promotion_steps(config)


__all__ = ["exit_code", "promote_intent", "run_outputs", "summary"]
