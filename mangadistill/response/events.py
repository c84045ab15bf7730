"""The response track's log events (runbook 7.11 `distilled_model_eval`, 11.3 `gate_eval`), built in one place."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["distilled_model_eval", "gate_eval"]


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 4)


def distilled_model_eval(*, student: str, teacher: str, epoch: int, metrics: dict[str, Any],
                         cost_reduction: float | None = None) -> dict[str, Any]:
    """Runbook 7.11, one per evaluated epoch. ``human_win_rate_vs_base`` is the judge's win rate (the
    deterministic judge or an LLM judge: no human is in the loop here; the key keeps the runbook's name)."""
    return {
        "event": "distilled_model_eval", "student": student, "teacher": teacher, "epoch": epoch,
        "teacher_preference_match": _number(metrics.get("teacher_preference_match")),
        "human_win_rate_vs_base": _number(metrics.get("win_rate_vs_base")),
        "hallucination_rate": _number(metrics.get("hallucination_rate")),
        "refusal_precision": _number(metrics.get("refusal_precision")),
        "cost_reduction": _number(cost_reduction),
    }


def gate_eval(*, run_id: str, student: str, teacher: str, metrics: dict[str, Any], decision: str) -> dict[str, Any]:
    """Runbook 11.3, once per run on the gate set."""
    return {
        "event": "gate_eval", "run_id": run_id, "student": student, "teacher": teacher,
        "teacher_preference_match": _number(metrics.get("teacher_preference_match")),
        "human_win_rate_vs_base": _number(metrics.get("win_rate_vs_base")),
        "catalog_hallucination_rate": _number(metrics.get("hallucination_rate")),
        "escalation_precision": _number(metrics.get("escalation_precision")),
        "cost_reduction": _number(metrics.get("cost_reduction")),
        "decision": decision,
    }
