"""Gate evaluation: a pure function of recorded metrics -> decision + one record per gate + reason.

Gates are data (`GateSpec` in the config): a metric name and a bound. A metric that is missing, not a
number, or NaN fails its gate: a model is promoted on evidence, never on its absence.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from mangadistill.config import GateSpec

@dataclass(frozen=True)
class GateRecord:
    """One gate's outcome: `status` is pass, fail or skipped (disabled)."""

    name: str
    category: str
    metric: str
    op: str  # ">=" or "<="
    threshold: float
    value: float | None
    status: str
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def describe(self) -> str:
        """``refusal_precision: 0.9100 >= 0.9400 FAIL`` (value ``missing`` when absent)."""
        value = "missing" if self.value is None else f"{self.value:.4g}"
        return f"{self.name}: {value} {self.op} {self.threshold:.4g} {self.status.upper()}"


@dataclass(frozen=True)
class GateDecision:
    """All gates of one set: ``passed`` only if no enabled gate failed."""

    gate_set: str
    passed: bool
    records: tuple[GateRecord, ...]
    reason: str

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.records if r.status == "fail"]

    def to_dict(self) -> dict:
        return {"gate_set": self.gate_set, "passed": self.passed, "reason": self.reason,
                "gates": [{**asdict(r), "passed": r.passed} for r in self.records]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def results(self) -> dict[str, str]:
        """Gate name -> ``"0.93 >= 0.89 PASS"`` (what the version record keeps per gate)."""
        return {r.name: r.describe().split(": ", 1)[1] for r in self.records}


def as_number(value: object) -> float | None:
    """A finite float, or None for missing / unparsable / NaN values (which fail their gate)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # version tags are strings
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def evaluate_gate(name: str, spec: GateSpec, metrics: Mapping[str, object]) -> GateRecord:
    op, threshold = (">=", spec.min) if spec.min is not None else ("<=", spec.max)
    value = as_number(metrics.get(spec.metric))
    if not spec.enabled:
        return GateRecord(name, spec.category, spec.metric, op, threshold, value, "skipped", "disabled in config")
    if value is None:
        missing = f"metric '{spec.metric}' missing"
        return GateRecord(name, spec.category, spec.metric, op, threshold, None, "fail", missing)
    passed = value >= threshold if op == ">=" else value <= threshold
    return GateRecord(name, spec.category, spec.metric, op, threshold, value, "pass" if passed else "fail")


def evaluate_gates(gate_set: str, gates: Mapping[str, GateSpec], metrics: Mapping[str, object]) -> GateDecision:
    """Evaluate every gate of `gates` against `metrics`; the reason names each failing gate."""
    if not gates:
        raise ValueError(f"gate set '{gate_set}' is empty: configure at least one gate")
    records = tuple(evaluate_gate(name, spec, metrics) for name, spec in gates.items())
    failed = [r for r in records if r.status == "fail"]
    enabled = sum(r.status != "skipped" for r in records)
    if failed:
        reason = "failed " + "; ".join(r.describe() for r in failed)
    else:
        reason = f"all {enabled} enabled gates passed" + (
            f" ({len(records) - enabled} skipped)" if enabled < len(records) else "")
    return GateDecision(gate_set, not failed, records, reason)
