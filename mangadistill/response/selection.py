"""When to stop response SFT and which epoch to keep: runbook 8.4 (stop rule), 10.2 (response-model rules), 7.8.

Pure functions of the epoch table, tested on the runbook's own tables (8.3 and 7.6).

- **8.4 stop rule**: keep the first checkpoint that satisfies all of: the next epoch's rubric improves by less
  than `rubric_gain`; its hallucination rate did not increase; its escalation precision did not decrease; the
  next epoch gives no meaningful p95 benefit (less than `latency_gain_fraction`). Training stops one epoch after
  that checkpoint (the "next epoch" is what shows it was flat).
- Neither rule fires before epoch `min_epochs + 1` (10.2: "after the minimum epoch count"): the first epochs
  of SFT move every metric a lot, and a rise there says nothing about overfitting.
- **10.2 safety stops**: the hallucination rate rises by more than
  `hallucination_rise_points`, or refusal precision drops.
- **7.8 choice**: walking the epochs in order, a later epoch replaces the kept one only if it is better on
  imitation (rubric or teacher preference match) *and* no worse on hallucination rate and refusal precision; a
  later epoch that trades either for imitation loses, and the reason says so.
- "Not rising" / "no worse" means no *measurable* change: with the validation size known, a change within
  `noise_z` standard errors of the difference is noise (`_not_worse`); the runbook's own tables (no size)
  compare exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mangadistill.config.distill_response import ResponseStopConfig

__all__ = ["EpochScores", "StopDecision", "choose_epoch", "qualifies_8_4", "scores_of", "should_stop"]

_EPS = 1e-9


@dataclass(frozen=True)
class EpochScores:
    """One row of the epoch table (8.3 / 7.6 shape); rates are fractions, rubric is out of 5."""

    epoch: int
    rubric: float
    hallucination_rate: float
    p95_ms: float = math.nan
    train_loss: float = math.nan
    refusal_precision: float = math.nan
    escalation_precision: float = math.nan
    teacher_preference_match: float = math.nan
    #: Prompts the rates were measured on (validation size); NaN for a table without it (the runbook's).
    n: float = math.nan


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str
    #: The checkpoint the rule picked (8.4), or None when it only says "stop".
    chosen_epoch: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _not_worse(new: float, old: float, higher_is_better: bool, n: float = math.nan, z: float = 0.0) -> bool:
    """True when `new` is no measurably worse than `old`; an unmeasured value (NaN) never blocks.

    A rate measured on `n` prompts moves by chance: a change counts as a regression only when it exceeds `z`
    standard errors of the difference of two binomial rates, sqrt(p1(1-p1)/n + p2(1-p2)/n). On 20 validation
    prompts one more hallucinated answer (5 points) is noise; on runbook 7.8's 3,200 gate rows 3.6% -> 4.1%
    (0.5 points, 1.04 standard errors) is a regression. Without `n`, any change counts.
    """
    if math.isnan(new) or math.isnan(old):
        return True
    tolerance = _EPS
    if z > 0 and not math.isnan(n) and n > 0:
        tolerance = max(_EPS, z * math.sqrt((new * (1 - new) + old * (1 - old)) / n))
    return new >= old - tolerance if higher_is_better else new <= old + tolerance


def qualifies_8_4(previous: EpochScores | None, current: EpochScores, following: EpochScores,
                  config: ResponseStopConfig) -> tuple[bool, str]:
    """Whether `current` is the 8.4 checkpoint, given its neighbours; with the reason either way."""
    gain = following.rubric - current.rubric
    if gain >= config.rubric_gain:
        return False, f"epoch {following.epoch} still gains {gain:+.3f} rubric (>= {config.rubric_gain})"
    z, n = config.noise_z, current.n
    if previous is not None and not _not_worse(current.hallucination_rate, previous.hallucination_rate, False, n, z):
        return False, (f"hallucination rose at epoch {current.epoch} "
                       f"({100 * previous.hallucination_rate:.1f}% -> {100 * current.hallucination_rate:.1f}%)")
    if previous is not None and not _not_worse(current.escalation_precision, previous.escalation_precision, True, n, z):
        return False, f"escalation precision fell at epoch {current.epoch}"
    latency_gain = (current.p95_ms - following.p95_ms) / current.p95_ms if current.p95_ms > 0 else 0.0
    if not math.isnan(latency_gain) and latency_gain >= config.latency_gain_fraction:
        return False, f"epoch {following.epoch} still cuts p95 by {100 * latency_gain:.1f}%"
    return True, (f"8.4: epoch {following.epoch} gains {gain:+.3f} rubric (< {config.rubric_gain}), hallucination "
                  f"not rising, escalation precision not falling, no meaningful p95 benefit")


def should_stop(table: list[EpochScores], config: ResponseStopConfig) -> StopDecision:
    """Whether to stop after the last epoch of `table` (see the module docstring)."""
    if len(table) < 2 or len(table) <= config.min_epochs:
        return StopDecision(False, f"{len(table)} epoch(s) trained; the rule compares epochs after the first "
                                   f"{max(1, config.min_epochs)}")
    previous, current, following = (table[-3] if len(table) >= 3 else None), table[-2], table[-1]
    rise = following.hallucination_rate - current.hallucination_rate
    if rise * 100 > config.hallucination_rise_points + _EPS:
        return StopDecision(True, f"10.2: hallucination rate rose {100 * rise:.1f} points at epoch {following.epoch} "
                                  f"(> {config.hallucination_rise_points})")
    if not _not_worse(following.refusal_precision, current.refusal_precision, True):
        drop = f"{100 * current.refusal_precision:.1f}% -> {100 * following.refusal_precision:.1f}%"
        return StopDecision(True, f"10.2: refusal precision dropped at epoch {following.epoch} ({drop})")
    ok, reason = qualifies_8_4(previous, current, following, config)
    if ok:
        return StopDecision(True, reason, chosen_epoch=current.epoch)
    return StopDecision(False, reason)


def choose_epoch(table: list[EpochScores], config: ResponseStopConfig) -> StopDecision:
    """The epoch to keep: the first 8.4 checkpoint if one qualifies, else the 7.8 walk (module docstring)."""
    if not table:
        raise ValueError("no epochs to choose from")
    for i in range(len(table) - 1):
        ok, reason = qualifies_8_4(table[i - 1] if i else None, table[i], table[i + 1], config)
        if ok:
            return StopDecision(True, reason, chosen_epoch=table[i].epoch)
    kept, notes = table[0], []
    for row in table[1:]:
        imitates_better = (row.rubric > kept.rubric + _EPS
                           or row.teacher_preference_match > kept.teacher_preference_match + _EPS)
        safe = (_not_worse(row.hallucination_rate, kept.hallucination_rate, False, row.n, config.noise_z)
                and _not_worse(row.refusal_precision, kept.refusal_precision, True, row.n, config.noise_z))
        if imitates_better and safe:
            kept = row
        elif imitates_better:
            notes.append(f"7.8: epoch {row.epoch} loses to epoch {kept.epoch}: better imitation, but hallucination "
                         f"{100 * kept.hallucination_rate:.1f}% -> {100 * row.hallucination_rate:.1f}%, refusal "
                         f"precision {100 * kept.refusal_precision:.1f}% -> {100 * row.refusal_precision:.1f}%")
    reason = f"7.8: epoch {kept.epoch} is the best imitation without a safety regression"
    return StopDecision(False, "; ".join([reason, *notes]), chosen_epoch=kept.epoch, notes=tuple(notes))


def scores_of(row: dict[str, Any]) -> EpochScores:
    """An epoch table row (``epochs.jsonl``, the managed workflow's checkpoint table) as the rules' input."""
    return EpochScores(epoch=row["epoch"], rubric=row["val_rubric"], hallucination_rate=row["hallucination_rate"],
                       p95_ms=row["p95_ms"], train_loss=row["train_loss"], refusal_precision=row["refusal_precision"],
                       escalation_precision=row["escalation_precision"],
                       teacher_preference_match=row["teacher_preference_match"], n=row.get("n", math.nan))
