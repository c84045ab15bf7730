"""The response stop rule (8.4, 10.2) and the epoch choice (7.8) on the runbook's own tables."""

import math

from mangadistill.config import ResponseStopConfig
from mangadistill.response.selection import EpochScores, choose_epoch, should_stop

CONFIG = ResponseStopConfig(min_epochs=1)  # the runbook's tables: every epoch counts

#: Runbook 8.3: epoch, train loss, val rubric, hallucination rate, p95 (ms).
TABLE_8_3 = [
    EpochScores(1, 3.61, 0.074, p95_ms=158, train_loss=1.92),
    EpochScores(2, 3.83, 0.055, p95_ms=146, train_loss=1.41),
    EpochScores(3, 3.92, 0.040, p95_ms=137, train_loss=1.19),
    EpochScores(4, 3.91, 0.046, p95_ms=135, train_loss=1.08),
]

#: Runbook 7.6: epoch, rubric, teacher preference match, hallucination rate, refusal precision.
TABLE_7_6 = [
    EpochScores(1, 4.08, 0.054, refusal_precision=0.918, teacher_preference_match=0.812),
    EpochScores(2, 4.23, 0.042, refusal_precision=0.937, teacher_preference_match=0.849),
    EpochScores(3, 4.31, 0.036, refusal_precision=0.944, teacher_preference_match=0.872),
    EpochScores(4, 4.30, 0.041, refusal_precision=0.938, teacher_preference_match=0.874),
]


def test_8_4_picks_epoch_3_of_table_8_3():
    decision = choose_epoch(TABLE_8_3, CONFIG)
    assert decision.chosen_epoch == 3
    assert decision.reason.startswith("8.4")


def test_stop_rule_runs_on_table_8_3_epoch_by_epoch():
    fired = [n for n in range(1, 5) if should_stop(TABLE_8_3[:n], CONFIG).stop]
    # after epoch 4 the table shows epoch 3 was flat next and its hallucination did not rise
    assert fired == [4]
    assert should_stop(TABLE_8_3, CONFIG).chosen_epoch == 3 or "10.2" in should_stop(TABLE_8_3, CONFIG).reason


def test_a_hallucination_rise_over_0_3_points_stops():
    decision = should_stop(TABLE_8_3, CONFIG)  # 4.0% -> 4.6% is +0.6 points
    assert decision.stop and "hallucination" in decision.reason


def test_table_7_6_keeps_epoch_3():
    assert choose_epoch(TABLE_7_6, CONFIG).chosen_epoch == 3


def test_7_8_epoch_4_trades_safety_for_imitation_and_loses():
    # epoch 4 now gains rubric too (so 8.4 never finds a flat epoch), but at the 7.6 safety cost
    table = [*TABLE_7_6[:3], EpochScores(4, 4.36, 0.041, refusal_precision=0.938, teacher_preference_match=0.874)]
    decision = choose_epoch(table, CONFIG)
    assert decision.chosen_epoch == 3
    assert decision.reason.startswith("7.8")
    assert any("epoch 4 loses to epoch 3" in note for note in decision.notes)


def test_refusal_precision_drop_stops():
    table = [EpochScores(1, 3.0, 0.05, refusal_precision=0.95), EpochScores(2, 3.5, 0.04, refusal_precision=0.93)]
    decision = should_stop(table, CONFIG)
    assert decision.stop and "refusal precision" in decision.reason


def test_still_improving_does_not_stop_and_budget_end_keeps_the_best_safe_epoch():
    table = [EpochScores(1, 3.0, 0.10, p95_ms=100), EpochScores(2, 3.5, 0.05, p95_ms=100),
             EpochScores(3, 4.0, 0.03, p95_ms=100)]
    assert not should_stop(table, CONFIG).stop
    assert choose_epoch(table, CONFIG).chosen_epoch == 3


def test_min_epochs_holds_the_rule_back():
    flat = [EpochScores(1, 3.0, 0.05), EpochScores(2, 3.0, 0.05), EpochScores(3, 3.0, 0.05)]
    assert should_stop(flat[:2], CONFIG).stop
    assert not should_stop(flat[:2], ResponseStopConfig(min_epochs=2)).stop  # the default: from epoch 3 on
    assert should_stop(flat, ResponseStopConfig(min_epochs=2)).stop


def test_unmeasured_metrics_never_block():
    table = [EpochScores(1, 3.0, 0.05), EpochScores(2, 3.01, 0.05)]
    decision = choose_epoch(table, CONFIG)
    assert decision.chosen_epoch == 1 and math.isnan(table[0].p95_ms)


def test_a_one_answer_change_on_a_small_validation_set_is_noise():
    small = [EpochScores(1, 3.66, 0.15, refusal_precision=0.0, n=20), EpochScores(2, 3.88, 0.20, refusal_precision=0.0, n=20),
             EpochScores(3, 4.31, 0.20, refusal_precision=0.0, n=20)]
    assert choose_epoch(small, CONFIG).chosen_epoch == 3
    # the same rates measured on the runbook's 3,200 gate rows are a real rise: epoch 1 is kept
    large = [EpochScores(r.epoch, r.rubric, r.hallucination_rate, refusal_precision=0.0, n=3200) for r in small]
    assert choose_epoch(large, CONFIG).chosen_epoch == 1


def test_table_7_6_with_its_gate_size_still_keeps_epoch_3():
    sized = [EpochScores(r.epoch, r.rubric, r.hallucination_rate, refusal_precision=r.refusal_precision,
                         teacher_preference_match=r.teacher_preference_match, n=3200) for r in TABLE_7_6]
    assert choose_epoch(sized, CONFIG).chosen_epoch == 3
    table = [*sized[:3], EpochScores(4, 4.36, 0.041, refusal_precision=0.938, teacher_preference_match=0.874, n=3200)]
    assert choose_epoch(table, CONFIG).chosen_epoch == 3  # 3.6% -> 4.1% on 3,200 rows is measurable
