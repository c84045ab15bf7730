"""The refusal decision rule: argmax, a confidence threshold, and its calibration on validation."""

import numpy as np
import pytest

from mangadistill.models.decision import calibrate_refusal_threshold, card_refusal_rule, decide

REFUSAL = 2
# Top probabilities (softmax of these logits): rows 0-2 confident in-scope, rows 3-5 refusal rows of falling confidence.
LOGITS = np.log(np.array([
    [0.90, 0.05, 0.05],  # in-scope, confident
    [0.05, 0.85, 0.10],  # in-scope, confident
    [0.55, 0.40, 0.05],  # in-scope, unsure (0.55)
    [0.10, 0.10, 0.80],  # refusal, predicted as refusal by argmax
    [0.60, 0.30, 0.10],  # refusal, argmax says class 0 with 0.60
    [0.45, 0.35, 0.20],  # refusal, argmax says class 0 with 0.45
]))
LABELS = np.array([0, 1, 0, 2, 2, 2])


def test_decide_refuses_below_the_threshold_only():
    predictions, confidence = decide(LOGITS)
    assert predictions.tolist() == [0, 1, 0, 2, 0, 0]
    assert confidence == pytest.approx([0.90, 0.85, 0.55, 0.80, 0.60, 0.45])
    assert decide(LOGITS, REFUSAL, 0.5)[0].tolist() == [0, 1, 0, 2, 0, 2]
    assert decide(LOGITS, None, 0.99)[0].tolist() == [0, 1, 0, 2, 0, 0]  # no refusal class: plain argmax


@pytest.mark.parametrize(("target", "threshold", "recall", "in_scope"), [
    (0.3, 0.0, 1 / 3, 1.0),          # argmax already refuses 1 of 3
    (0.6, 0.45, 2 / 3, 1.0),         # refusing the 0.45 row is enough and costs nothing
    (1.0, 0.60, 1.0, 2 / 3),         # all three refused only once the unsure in-scope 0.55 row goes too
])
def test_calibration_takes_the_smallest_threshold_reaching_the_target(target, threshold, recall, in_scope):
    choice = calibrate_refusal_threshold(LOGITS, LABELS, REFUSAL, target)
    assert choice.threshold == pytest.approx(threshold, abs=1e-6)
    assert (choice.refusal_recall, choice.in_scope_accuracy) == pytest.approx((recall, in_scope))
    assert f"refusal recall {100 * target:.0f}%" in choice.reason


def test_calibration_needs_refusal_rows():
    with pytest.raises(ValueError, match="no refusal rows"):
        calibrate_refusal_threshold(LOGITS[:3], LABELS[:3], REFUSAL, 0.5)


def test_the_card_carries_the_rule():
    assert card_refusal_rule({"labels": ["a", "b", "oos"], "refusal_label": "oos", "refusal_threshold": 0.4}) == (2, 0.4)
    assert card_refusal_rule({"labels": ["a", "b"]}) == (None, 0.0)
