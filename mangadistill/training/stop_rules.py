"""Early-stop rules and deployment-epoch choice for the classifier distillation (pure functions of metrics).

Sources in the MangaAssist distillation runbook:

- 6.5  Stage 1 (feature matching) stop rule: stop when ALL of these hold for 2 consecutive epochs:
       feature loss improves < 2 %, attention loss improves < 2 %, probe-head val accuracy gains < 0.2 points.
- 10.2 Classifier stop rule (used for Stage 2, output KD + CE): stop when AT LEAST 2 OF 3 hold for 2
       consecutive epochs: val accuracy improves < 0.15 points, rare-class recall improves < 0.25 points,
       KD loss improves < 1 %.
- 6.8  Deployment candidate: the epoch that FIRST reaches the best validation accuracy.
- 6.4 / 6.7 are the epoch tables these rules are tested against (tests/unit/test_stop_rules.py).

Conventions:

- An epoch record is a plain ``Mapping[str, float]`` with an ``"epoch"`` key; accuracies and recalls are
  fractions (0.826 = 82.6 %), so "0.2 points" is 0.002.
- Loss improvement is relative, ``(prev - cur) / ref`` with ``ref = prev`` (the previous epoch's loss) or,
  for Stage 1 with ``improvement_reference="first"``, the first epoch's loss; accuracy/recall gain is
  absolute, ``cur - prev``.
- Every condition is a strict ``<``; a value within ``1e-9`` of its threshold counts as equal to it (not
  below), so decimal table values such as 0.834 - 0.832 do not flip on float rounding.
- "N consecutive epochs" means the last N records each satisfied the rule against the record before it.
  The first record has no previous epoch, so it never satisfies a condition.
- Rules keep no state: call ``decide`` with the whole history after each epoch. Acting on a decision
  (ending the run, saving a checkpoint) belongs to the caller.
- A rule names the metrics it reads (``metric_keys``), so a caller can check them against what its
  training loop logs before the first epoch. A record without one of them is a `MissingMetricError`
  (a mistake: fail); a value the rule cannot judge (not finite, or a negative loss) is an
  `UnjudgeableMetricError` (e.g. rare-class recall is NaN when validation holds no rare-class row), and
  the caller decides what that means.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DeploymentChoice",
    "MissingMetricError",
    "UnjudgeableMetricError",
    "Stage1StopRule",
    "Stage2StopRule",
    "StopDecision",
    "TeacherStopRule",
    "select_deployment_epoch",
]

EPOCH_KEY = "epoch"
_EPS = 1e-9  # values this close to a threshold are treated as equal to it (decimal tables vs float rounding)

History = Sequence[Mapping[str, float]]


class MissingMetricError(KeyError):
    """An epoch record lacks a metric the rule reads: the rule or the loop is misconfigured."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class UnjudgeableMetricError(ValueError):
    """A metric the rule reads has a value it cannot judge at some epoch: NaN or infinite, or a negative loss."""


@dataclass(frozen=True)
class StopDecision:
    """Outcome of a stop rule evaluated at one epoch.

    ``stop``: whether training should stop after ``epoch``. ``reason``: human-readable account of the
    measured values, thresholds, and on which epochs the conditions held. ``conditions``: per-condition
    truth for the latest epoch, keyed by the metric name the condition watches.
    """

    stop: bool
    reason: str
    epoch: int
    conditions: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentChoice:
    """The epoch chosen as deployment candidate, its metric value, and why it was chosen (runbook 6.8)."""

    epoch: int
    value: float
    reason: str


@dataclass(frozen=True)
class _Check:
    """One condition evaluated between two consecutive epochs."""

    name: str  # metric key the condition watches
    held: bool
    text: str  # e.g. "loss_feature improved 1.82% (< 2.00%)"


# --------------------------------------------------------------------------------------------- helpers


def _epoch_of(record: Mapping[str, float], index: int) -> int:
    """Return the integer epoch of `record` (the `index`-th record), raising if absent or not integral."""
    if EPOCH_KEY not in record:
        raise KeyError(f"record #{index} of the history has no {EPOCH_KEY!r} key; every record needs one")
    value = record[EPOCH_KEY]
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"record #{index}: {EPOCH_KEY!r} must be a whole number, got {value!r}")
    return int(value)


def _metric(record: Mapping[str, float], key: str, epoch: int) -> float:
    """Return finite metric `key` of `record`, naming the key and epoch if it is missing or not finite."""
    if key not in record:
        raise MissingMetricError(
            f"epoch {epoch} has no metric {key!r} (has: {sorted(record)}); log it or configure the rule's key name"
        )
    value = float(record[key])
    if not math.isfinite(value):
        raise UnjudgeableMetricError(
            f"epoch {epoch}: metric {key!r} is {value}; a stop rule cannot judge a non-finite value"
        )
    return value


def _epochs(history: History) -> list[int]:
    """Return the epochs of `history`, checking they are present and strictly increasing."""
    epochs = [_epoch_of(record, i) for i, record in enumerate(history)]
    for before, after in itertools.pairwise(epochs):
        if after <= before:
            raise ValueError(f"history epochs must be strictly increasing, got {before} then {after}")
    return epochs


def _relative_improvement(prev: float, cur: float, reference: float | None = None) -> float:
    """Relative decrease of a loss, ``(prev - cur) / reference`` (default reference: `prev`).

    0.0 when nothing changed from a zero reference, -inf when the loss rose from a zero reference.
    """
    reference = prev if reference is None else reference
    if prev < 0 or reference < 0:
        raise UnjudgeableMetricError(
            f"relative improvement needs non-negative losses, got {prev} and reference {reference}"
        )
    if reference == 0:
        return 0.0 if cur == prev else -math.inf
    return (prev - cur) / reference


def _below(value: float, threshold: float) -> bool:
    """Strict ``value < threshold``, with values within _EPS of the threshold counted as equal to it."""
    return value < threshold - _EPS


def _loss_check(key: str, prev: float, cur: float, threshold: float, reference: float | None = None) -> _Check:
    """Condition "loss `key` improved by less than `threshold` (relative to `reference`, default `prev`)"."""
    improvement = _relative_improvement(prev, cur, reference)
    held = _below(improvement, threshold)
    op = "<" if held else ">="
    of = "" if reference is None else " of the first epoch's loss"
    return _Check(key, held, f"{key} improved {improvement:.2%}{of} ({op} {threshold:.2%})")


def _gain_check(key: str, prev: float, cur: float, threshold: float) -> _Check:
    """Condition "fraction metric `key` gained less than `threshold` (absolute, shown in points)"."""
    gain = cur - prev
    held = _below(gain, threshold)
    op = "<" if held else ">="
    return _Check(key, held, f"{key} gained {gain * 100:+.2f} points ({op} {threshold * 100:.2f} points)")


def _check_threshold(name: str, value: float) -> None:
    """Raise ValueError naming `name` unless `value` is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_positive_int(name: str, value: int) -> None:
    """Raise ValueError naming `name` unless `value` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_keys(**keys: str) -> None:
    """Raise ValueError naming the field unless every key name is a non-empty string and all are distinct."""
    for name, key in keys.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{name} must be a non-empty metric name, got {key!r}")
        if key == EPOCH_KEY:
            raise ValueError(f"{name} cannot be {EPOCH_KEY!r}; it must name a metric")
    if len(set(keys.values())) != len(keys):
        raise ValueError(f"metric key fields must be distinct, got {keys}")


# ------------------------------------------------------------------------------------------ the rules


class _ConsecutiveEpochRule:
    """Shared logic: stop once the rule has held on the last `patience` records (each vs its predecessor).

    Subclasses are frozen dataclasses providing ``patience``, ``_label``, ``_keys()``, ``_checks(prev, cur)``
    and ``_holds(checks)``.
    """

    patience: int
    _label: str = "rule"

    def _keys(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """The metrics this rule reads from every epoch record (besides ``epoch``)."""
        return self._keys()

    def _checks(self, first: Mapping[str, float], prev: Mapping[str, float], cur: Mapping[str, float]) -> list[_Check]:
        raise NotImplementedError

    def _holds(self, checks: list[_Check]) -> str | None:
        """Return a short description of why the rule held (e.g. "all 3 held"), or None if it did not."""
        raise NotImplementedError

    def _values(self, history: History) -> list[dict[str, float]]:
        """Validate the whole history and return, per record, the epoch and the metrics this rule reads."""
        epochs = _epochs(history)
        return [
            {EPOCH_KEY: epoch, **{key: _metric(record, key, epoch) for key in self._keys()}}
            for epoch, record in zip(epochs, history)
        ]

    def decide(self, history: History) -> StopDecision:
        """Decide whether to stop after the last epoch of `history` (all epochs so far, oldest first).

        Raises ValueError on an empty history or non-increasing epochs, `UnjudgeableMetricError` (a ValueError)
        on a non-finite metric or a negative loss, and `MissingMetricError` (a KeyError naming the key and the epoch) when a
        record lacks a metric the rule reads.
        """
        if not history:
            raise ValueError(f"{self._label}: history is empty; call decide after at least one epoch")
        return self._decide(self._values(history))

    def first_stop(self, history: History) -> StopDecision | None:
        """Replay `history` epoch by epoch and return the first decision that stops, or None if none does."""
        values = self._values(history)  # validate the full table up front, not only the replayed prefix
        for end in range(1, len(values) + 1):
            decision = self._decide(values[:end])
            if decision.stop:
                return decision
        return None

    def _decide(self, values: list[dict[str, float]]) -> StopDecision:
        """Core of `decide` on already-validated values."""
        epoch = int(values[-1][EPOCH_KEY])
        if len(values) == 1:
            return StopDecision(
                stop=False,
                reason=f"{self._label}: continue after epoch {epoch}: no previous epoch to compare against",
                epoch=epoch,
                conditions={key: False for key in self._keys()},
            )
        latest = self._checks(values[0], values[-2], values[-1])
        streak = self._streak(values)  # [(epoch, why), ...] oldest first, ending at the latest epoch
        stop = len(streak) >= self.patience
        measured = ", ".join(check.text for check in latest)
        if stop:
            window = streak[-self.patience :]
            held_on = ", ".join(f"epoch {e} [{why}]" for e, why in window)
            epochs = ", ".join(str(e) for e, _ in window)
            summary = f"rule held for {self.patience} consecutive epochs ({epochs}): {held_on}"
        elif streak:
            summary = (
                f"rule held on epoch {epoch} [{streak[-1][1]}], "
                f"{len(streak)} of {self.patience} consecutive epochs so far"
            )
        else:
            summary = f"rule did not hold at epoch {epoch} (0 of {self.patience} consecutive epochs)"
        return StopDecision(
            stop=stop,
            reason=f"{self._label}: {'stop' if stop else 'continue'} after epoch {epoch}: {measured}; {summary}",
            epoch=epoch,
            conditions={check.name: check.held for check in latest},
        )

    def _streak(self, values: list[dict[str, float]]) -> list[tuple[int, str]]:
        """Trailing run of epochs on which the rule held, oldest first, as (epoch, why it held)."""
        run: list[tuple[int, str]] = []
        for i in range(len(values) - 1, 0, -1):
            why = self._holds(self._checks(values[0], values[i - 1], values[i]))
            if why is None:
                break
            run.append((int(values[i][EPOCH_KEY]), why))
        return run[::-1]


@dataclass(frozen=True)
class Stage1StopRule(_ConsecutiveEpochRule):
    """Runbook 6.5: stop Stage 1 (feature matching) when ALL conditions hold for `patience` consecutive epochs.

    Conditions, each against the previous epoch: relative improvement of the feature loss
    < `min_feature_improvement`, of the attention loss < `min_attention_improvement`, and absolute gain of the
    probe-head val accuracy < `min_probe_gain` (a fraction: 0.002 = 0.2 points). `improvement_reference`
    "previous" divides a loss's improvement by the previous epoch's loss; "first" by the first epoch's
    (the reading under which table 6.4 stops after epoch 6, with ``patience=1``: see `Stage1StopConfig`).
    """

    min_feature_improvement: float = 0.02
    min_attention_improvement: float = 0.02
    min_probe_gain: float = 0.002
    patience: int = 2
    feature_loss_key: str = "loss_feature"
    attention_loss_key: str = "loss_attention"
    probe_accuracy_key: str = "probe_val_accuracy"
    improvement_reference: str = "previous"

    _label = "stage 1"

    def __post_init__(self) -> None:
        """Validate thresholds, patience and key names (ValueError naming the field)."""
        _check_threshold("min_feature_improvement", self.min_feature_improvement)
        _check_threshold("min_attention_improvement", self.min_attention_improvement)
        _check_threshold("min_probe_gain", self.min_probe_gain)
        _check_positive_int("patience", self.patience)
        if self.improvement_reference not in ("previous", "first"):
            raise ValueError(f"improvement_reference must be 'previous' or 'first', got {self.improvement_reference!r}")
        _check_keys(
            feature_loss_key=self.feature_loss_key,
            attention_loss_key=self.attention_loss_key,
            probe_accuracy_key=self.probe_accuracy_key,
        )

    def _keys(self) -> tuple[str, ...]:
        return (self.feature_loss_key, self.attention_loss_key, self.probe_accuracy_key)

    def _checks(self, first: Mapping[str, float], prev: Mapping[str, float], cur: Mapping[str, float]) -> list[_Check]:
        f, a, p = self._keys()
        ref = (lambda key: first[key]) if self.improvement_reference == "first" else (lambda key: None)
        return [
            _loss_check(f, prev[f], cur[f], self.min_feature_improvement, ref(f)),
            _loss_check(a, prev[a], cur[a], self.min_attention_improvement, ref(a)),
            _gain_check(p, prev[p], cur[p], self.min_probe_gain),
        ]

    def _holds(self, checks: list[_Check]) -> str | None:
        return f"all {len(checks)} held" if all(c.held for c in checks) else None


@dataclass(frozen=True)
class Stage2StopRule(_ConsecutiveEpochRule):
    """Runbook 10.2 classifier rule (Stage 2): stop when >= `required` of 3 conditions hold for `patience` epochs.

    Conditions, each against the previous epoch: val accuracy gains < `min_accuracy_gain` (0.0015 = 0.15
    points), rare-class recall gains < `min_rare_recall_gain` (0.0025 = 0.25 points), KD loss improves
    < `min_kd_improvement` relative (0.01 = 1 %). The runbook (10.1) prefers the validation KD loss; point
    `kd_loss_key` at it (e.g. "val_loss_kd") when it is logged.
    """

    min_accuracy_gain: float = 0.0015
    min_rare_recall_gain: float = 0.0025
    min_kd_improvement: float = 0.01
    required: int = 2
    patience: int = 2
    accuracy_key: str = "val_accuracy"
    rare_recall_key: str = "rare_class_recall"
    kd_loss_key: str = "loss_kd"

    _label = "stage 2"

    def __post_init__(self) -> None:
        """Validate thresholds, counts and key names (ValueError naming the field)."""
        _check_threshold("min_accuracy_gain", self.min_accuracy_gain)
        _check_threshold("min_rare_recall_gain", self.min_rare_recall_gain)
        _check_threshold("min_kd_improvement", self.min_kd_improvement)
        _check_positive_int("required", self.required)
        if self.required > 3:
            raise ValueError(f"required must be between 1 and 3 (there are 3 conditions), got {self.required}")
        _check_positive_int("patience", self.patience)
        _check_keys(accuracy_key=self.accuracy_key, rare_recall_key=self.rare_recall_key, kd_loss_key=self.kd_loss_key)

    def _keys(self) -> tuple[str, ...]:
        return (self.accuracy_key, self.rare_recall_key, self.kd_loss_key)

    def _checks(self, first: Mapping[str, float], prev: Mapping[str, float], cur: Mapping[str, float]) -> list[_Check]:
        acc, rare, kd = self._keys()
        return [
            _gain_check(acc, prev[acc], cur[acc], self.min_accuracy_gain),
            _gain_check(rare, prev[rare], cur[rare], self.min_rare_recall_gain),
            _loss_check(kd, prev[kd], cur[kd], self.min_kd_improvement),
        ]

    def _holds(self, checks: list[_Check]) -> str | None:
        held = [c.name for c in checks if c.held]
        if len(held) < self.required:
            return None
        return f"{len(held)} of {len(checks)} held: {', '.join(held)}; {self.required} required"


@dataclass(frozen=True)
class TeacherStopRule(_ConsecutiveEpochRule):
    """The teacher's fine-tuning rule, shaped like the students' (10.2): stop when validation accuracy gains
    < `min_accuracy_gain` (0.0015 = 0.15 points) *and* the validation loss improves < `min_loss_improvement`
    (relative) for `patience` epochs in a row. The epoch budget becomes a maximum: a user's larger label set
    that keeps improving trains on, an easy one stops early. Both must hold: a teacher whose accuracy has
    saturated still sharpens its probabilities (the soft labels the students learn from) while its
    validation loss falls.
    """

    min_accuracy_gain: float = 0.0015
    min_loss_improvement: float = 0.02
    patience: int = 1
    accuracy_key: str = "val_accuracy"
    loss_key: str = "val_loss"

    _label = "teacher"

    def __post_init__(self) -> None:
        _check_threshold("min_accuracy_gain", self.min_accuracy_gain)
        _check_threshold("min_loss_improvement", self.min_loss_improvement)
        _check_positive_int("patience", self.patience)
        _check_keys(accuracy_key=self.accuracy_key, loss_key=self.loss_key)

    def _keys(self) -> tuple[str, ...]:
        return (self.accuracy_key, self.loss_key)

    def _checks(self, first: Mapping[str, float], prev: Mapping[str, float], cur: Mapping[str, float]) -> list[_Check]:
        acc, loss = self._keys()
        return [_gain_check(acc, prev[acc], cur[acc], self.min_accuracy_gain),
                _loss_check(loss, prev[loss], cur[loss], self.min_loss_improvement)]

    def _holds(self, checks: list[_Check]) -> str | None:
        return "both held" if all(c.held for c in checks) else None


# ------------------------------------------------------------------------------------ deployment epoch


def select_deployment_epoch(history: History, metric: str = "val_accuracy", tolerance: float = 0.0) -> DeploymentChoice:
    """Runbook 6.8: the FIRST epoch whose `metric` reaches the best value in `history` (higher is better).

    A value within `tolerance` (absolute, same units as the metric) of the best counts as reaching it, so
    ties and near-ties go to the earlier epoch. Raises ValueError on an empty history or a bad tolerance,
    and KeyError naming the key and epoch when a record lacks `metric`.
    """
    _check_threshold("tolerance", tolerance)
    if not history:
        raise ValueError("history is empty; there is no epoch to select")
    epochs = _epochs(history)
    values = [_metric(record, metric, epoch) for epoch, record in zip(epochs, history)]
    best = max(values)
    best_epochs = [e for e, v in zip(epochs, values) if v >= best - _EPS]
    chosen_epoch, chosen_value = next((e, v) for e, v in zip(epochs, values) if v >= best - tolerance - _EPS)
    at_best = f"best {metric} {best:.4f} at epoch(s) {', '.join(map(str, best_epochs))}"
    if chosen_epoch == best_epochs[0]:
        reason = f"epoch {chosen_epoch} is the first to reach the {at_best}"
        if tolerance:
            reason += f" (no earlier epoch within tolerance {tolerance:g})"
    else:
        reason = (
            f"epoch {chosen_epoch} is the first within tolerance {tolerance:g} of the {at_best}: "
            f"{metric} {chosen_value:.4f}"
        )
    return DeploymentChoice(epoch=chosen_epoch, value=chosen_value, reason=reason)


# ------------------------------------------------------------------------------------------- reranker


@dataclass(frozen=True)
class RerankerStopRule:
    """Runbook 9.5 / 10.2 for a reranker: stop when NDCG@10 on validation gains less than `min_ndcg_gain`
    over one epoch, or when the top-3 swap rate turns unstable (rises by more than `max_swap_rate_rise`), on
    `patience` consecutive epoch-to-epoch comparisons.

    9.5's table: NDCG@10 0.771, 0.784, 0.791, 0.790 -> the gain from epoch 3 to 4 is negative, stop after
    epoch 4 (patience 1, the runbook's literal rule); the kept epoch is then the best one
    (`select_deployment_epoch` on ``val_ndcg_at_10``: epoch 3). A patience of 2 waits for a second small
    gain, so that one noisy dip of a small validation set does not end training. A history without swap
    rates (NaN or absent) is judged on NDCG alone. The latency condition of 10.2 does not change between
    epochs of one architecture; the promotion gate checks it.
    """

    min_ndcg_gain: float = 0.002
    max_swap_rate_rise: float = 0.1
    patience: int = 1
    ndcg_key: str = "val_ndcg_at_10"
    swap_key: str = "val_top3_swap_rate"

    def _compare(self, previous: Mapping[str, float], current: Mapping[str, float], epochs: tuple[int, int]):
        gain = _metric(current, self.ndcg_key, epochs[1]) - _metric(previous, self.ndcg_key, epochs[0])
        conditions = {self.ndcg_key: _below(gain, self.min_ndcg_gain)}
        reasons = [f"{self.ndcg_key} gain {gain:+.4f} {'<' if conditions[self.ndcg_key] else '>='} "
                   f"{self.min_ndcg_gain:g}"]
        before, after = (float(r.get(self.swap_key, math.nan)) for r in (previous, current))
        if math.isfinite(before) and math.isfinite(after):
            conditions[self.swap_key] = after - before > self.max_swap_rate_rise + _EPS
            reasons.append(f"{self.swap_key} {before:.3f} -> {after:.3f} "
                           f"({'unstable' if conditions[self.swap_key] else 'stable'}, limit +{self.max_swap_rate_rise:g})")
        return conditions, "; ".join(reasons)

    def decide(self, history: History) -> StopDecision:
        _check_positive_int("patience", self.patience)
        epochs = _epochs(history)
        if len(history) < 2:
            return StopDecision(False, "one epoch: nothing to compare yet", epochs[-1] if epochs else 0)
        held = []
        for i in range(max(1, len(history) - self.patience), len(history)):
            conditions, reason = self._compare(history[i - 1], history[i], (epochs[i - 1], epochs[i]))
            held.append(any(conditions.values()))
        stop = len(held) == self.patience and all(held)
        suffix = "; stop" if stop else ("" if not held[-1] else f"; held {sum(held)} of {self.patience} epoch(s) in a row")
        return StopDecision(stop, f"epoch {epochs[-1]}: {reason}{suffix}", epochs[-1], conditions)
