"""Rollback triggers of runbook 15.3 as a pure function: approved benchmark + observed metrics -> decision.

The approved benchmark is the production version's own benchmark (`VersionRecord.benchmark`: the gate
metrics recorded when it was registered, e.g. ``rare_class_recall``, ``latency_p95_ms``). A trigger whose
baseline or observation is missing (e.g. no escalation rows in the log) cannot fire; it is recorded
as ``no data`` so the gap is visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mangadistill.config import TriggerSpec
from mangadistill.lifecycle.gates import as_number


@dataclass(frozen=True)
class TriggerRecord:
    name: str
    baseline: float | None
    observed: float | None
    limit: float | None  # the value past which the trigger fires
    rule: str  # "drop > 3 pt" / "rise > 1 pt" / "rise > 20%"
    status: str  # fired, ok, no data, skipped

    def describe(self) -> str:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4g}"

        return (f"{self.name}: observed {fmt(self.observed)} vs approved {fmt(self.baseline)} "
                f"(limit {fmt(self.limit)}, {self.rule}) {self.status.upper()}")


@dataclass(frozen=True)
class TriggerDecision:
    fired: bool
    records: tuple[TriggerRecord, ...]
    reason: str

    def to_dict(self) -> dict:
        return {"fired": self.fired, "reason": self.reason, "triggers": [asdict(r) for r in self.records]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TriggerDecision:
        """The inverse of `to_dict` (a decision handed from one pipeline step to the next)."""
        return cls(bool(data["fired"]), tuple(TriggerRecord(**r) for r in data["triggers"]), str(data["reason"]))


def evaluate_trigger(name: str, spec: TriggerSpec, benchmark: Mapping[str, object],
                     observed: Mapping[str, object]) -> TriggerRecord:
    baseline, value = as_number(benchmark.get(spec.benchmark)), as_number(observed.get(name))
    drop = spec.max_drop_points is not None
    if drop:
        rule = f"drop > {spec.max_drop_points:g} pt"
        limit = None if baseline is None else baseline - spec.max_drop_points / 100
    elif spec.max_rise_points is not None:
        rule = f"rise > {spec.max_rise_points:g} pt"
        limit = None if baseline is None else baseline + spec.max_rise_points / 100
    else:
        rule = f"rise > {100 * spec.max_rise_fraction:g}%"
        limit = None if baseline is None else baseline * (1 + spec.max_rise_fraction)
    if not spec.enabled:
        return TriggerRecord(name, baseline, value, limit, rule, "skipped")
    if baseline is None or value is None:
        return TriggerRecord(name, baseline, value, limit, rule, "no data")
    fired = value < limit - 1e-12 if drop else value > limit + 1e-12  # exactly at the limit does not fire
    return TriggerRecord(name, baseline, value, limit, rule, "fired" if fired else "ok")


def evaluate_triggers(triggers: Mapping[str, TriggerSpec], benchmark: Mapping[str, object],
                      observed: Mapping[str, object]) -> TriggerDecision:
    """Fire if any enabled trigger crossed its threshold; the reason names each one that fired."""
    records = tuple(evaluate_trigger(name, spec, benchmark, observed) for name, spec in triggers.items())
    fired = [r for r in records if r.status == "fired"]
    missing = [r.name for r in records if r.status == "no data"]
    if fired:
        reason = "rollback trigger fired: " + "; ".join(r.describe() for r in fired)
    else:
        reason = "no trigger fired" + (f" (no data for {', '.join(missing)})" if missing else "")
    return TriggerDecision(bool(fired), records, reason)
