"""The decision rule from logits to an intent: argmax, or refuse when the model is not confident enough.

Out-of-scope queries are rare and varied, so a refusal class learned from a few examples catches only
part of them (CLINC150's BERT baseline: 40% out-of-scope recall). A confidence threshold adds the other
classic rule: predict the refusal class when the top softmax probability is below ``threshold``. The
threshold is calibrated on the validation split and travels in the model card (``refusal_threshold``),
so evaluation, ONNX serving and the registered pyfunc all decide the same way. numpy only: the served
ONNX model imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, C) logits, numerically stable."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def decide(logits: np.ndarray, refusal_id: int | None = None, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class ids (n,) and top-class probabilities (n,); rows below `threshold` become `refusal_id`."""
    logits = np.asarray(logits, dtype=np.float64)
    predictions = logits.argmax(-1)
    # the top class's probability, 1 / sum_c exp(z_c - z_max): no need to normalise every class (one query
    # at a time, each numpy call counts)
    confidence = 1.0 / np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)
    if refusal_id is not None and threshold > 0:
        predictions = np.where(confidence < threshold, refusal_id, predictions)
    return predictions, confidence


def card_refusal_rule(card: dict) -> tuple[int | None, float]:
    """(refusal class id, threshold) a model card asks for; (None, 0.0) = plain argmax."""
    labels = list(card.get("labels", []))
    label = card.get("refusal_label")
    if label not in labels:
        return None, 0.0
    return labels.index(label), float(card.get("refusal_threshold", 0.0))


@dataclass(frozen=True)
class ThresholdChoice:
    """A calibrated threshold and what it gave on the calibration split."""

    threshold: float
    refusal_recall: float
    in_scope_accuracy: float
    reason: str


def calibrate_refusal_threshold(
    logits: np.ndarray, labels: np.ndarray, refusal_id: int, target_recall: float
) -> ThresholdChoice:
    """The smallest threshold whose refusal recall on (`logits`, `labels`) reaches `target_recall`.

    The smallest one refuses the fewest in-scope queries. 0.0 (plain argmax) when argmax already reaches
    the target; when no threshold does, the one with the best recall (ties: the smaller threshold).
    """
    labels = np.asarray(labels)
    is_refusal = labels == refusal_id
    if not is_refusal.any():
        raise ValueError("the calibration split has no refusal rows; cannot calibrate a refusal threshold")
    argmax, confidence = decide(logits)
    candidates = np.concatenate([[0.0], np.unique(confidence) + 1e-9])  # each one refuses one more distinct confidence

    def score(threshold: float) -> tuple[float, float, float]:
        predictions = np.where(confidence < threshold, refusal_id, argmax)
        recall = float((predictions[is_refusal] == refusal_id).mean())
        in_scope = float((predictions[~is_refusal] == labels[~is_refusal]).mean()) if (~is_refusal).any() else float("nan")
        return float(threshold), recall, in_scope

    recalls = [score(t) for t in candidates]
    reached = [r for r in recalls if r[1] >= target_recall]
    threshold, recall, in_scope = reached[0] if reached else max(recalls, key=lambda r: (r[1], -r[0]))
    how = "argmax already reaches" if threshold == 0 else "smallest threshold reaching" if reached else "never reaches"
    reason = (f"refusal threshold {threshold:.4f}: {how} refusal recall {100 * target_recall:.0f}% on "
              f"{int(is_refusal.sum())} refusal rows (recall {100 * recall:.1f}%, in-scope accuracy {100 * in_scope:.2f}%)")
    return ThresholdChoice(float(threshold), recall, in_scope, reason)
