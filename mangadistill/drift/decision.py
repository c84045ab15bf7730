"""Whether drift warrants retraining: a pure function of a drift summary, with the reason written out.

`drift_report` records the recommendation with every report; the monitoring job (`monitor_intent`)
applies it to the newest report beside its rollback triggers (`mangadistill.drift.latest`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Recommendation:
    """Retrain or not, and why (one sentence a person can act on)."""

    retrain: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def retraining_recommendation(summary: Mapping[str, Any], drift_share_threshold: float) -> Recommendation:
    """Recommend retraining when the share of drifted columns is at or above `drift_share_threshold`.

    "At or above" is the comparison of Evidently's dataset-level test (``share < threshold`` passes), so
    a report that flags the dataset always recommends retraining at the same threshold, and vice versa.

    `summary` needs ``drift_share`` (0..1), ``drifted_columns`` (names) and ``n_columns`` (> 0), as
    produced by `mangadistill.drift.report.summarize`.
    """
    if not 0.0 < drift_share_threshold <= 1.0:
        raise ValueError(f"drift_share_threshold must be in (0, 1], got {drift_share_threshold!r}")
    n_columns = int(summary["n_columns"])
    if n_columns <= 0:
        raise ValueError("the drift summary monitors no columns; there is nothing to decide on")
    share = float(summary["drift_share"])
    drifted = list(summary["drifted_columns"])
    counted = f"{len(drifted)} of {n_columns} monitored columns drifted (share {share:.2f})"
    if share >= drift_share_threshold:
        return Recommendation(True, f"retrain: {counted}, at or above the threshold {drift_share_threshold:.2f}: "
                                    f"{', '.join(drifted)}")
    detail = f": {', '.join(drifted)}" if drifted else ""
    return Recommendation(False, f"no retraining needed: {counted}, below the threshold "
                                 f"{drift_share_threshold:.2f}{detail}")
