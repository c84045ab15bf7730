"""The retraining recommendation: a pure function of the drift summary (truth table)."""

from __future__ import annotations

import pytest

from mangadistill.drift.decision import Recommendation, retraining_recommendation


def _summary(drifted: list[str], n_columns: int = 10) -> dict:
    return {"drift_share": len(drifted) / n_columns, "drifted_columns": drifted, "n_columns": n_columns}


@pytest.mark.parametrize(("n_drifted", "threshold", "retrain"), [
    (0, 0.3, False),
    (2, 0.3, False),   # 0.2 < 0.3
    (3, 0.3, True),    # 0.3 >= 0.3: the same comparison as Evidently's dataset-drift test
    (4, 0.3, True),
    (10, 1.0, True),
    (9, 1.0, False),
    (1, 0.1, True),
])
def test_truth_table(n_drifted, threshold, retrain):
    columns = [f"col{i}" for i in range(n_drifted)]
    recommendation = retraining_recommendation(_summary(columns), threshold)
    assert isinstance(recommendation, Recommendation) and recommendation.retrain is retrain


def test_reason_names_the_share_the_threshold_and_the_drifted_columns():
    yes = retraining_recommendation(_summary(["text", "oov_rate", "predicted_intent"]), 0.3)
    assert yes.reason == ("retrain: 3 of 10 monitored columns drifted (share 0.30), at or above the threshold 0.30: "
                          "text, oov_rate, predicted_intent")
    no = retraining_recommendation(_summary(["emb_pc2"]), 0.3)
    assert no.reason == ("no retraining needed: 1 of 10 monitored columns drifted (share 0.10), below the "
                         "threshold 0.30: emb_pc2")
    assert retraining_recommendation(_summary([]), 0.3).reason.endswith("below the threshold 0.30")
    assert no.as_dict() == {"retrain": False, "reason": no.reason}


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01])
def test_threshold_out_of_range_is_an_error(threshold):
    with pytest.raises(ValueError, match="drift_share_threshold"):
        retraining_recommendation(_summary(["a"]), threshold)


def test_a_summary_without_columns_is_an_error():
    with pytest.raises(ValueError, match="monitors no columns"):
        retraining_recommendation({"drift_share": 0.0, "drifted_columns": [], "n_columns": 0}, 0.3)
