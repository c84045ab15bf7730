"""Stop rules and deployment-epoch choice (runbook 6.4-6.8, 10.2): truth tables plus the runbook's own epoch tables."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from mangadistill.config import (
    DistillIntentConfig,
    KDConfig,
    Stage1Config,
    Stage1StopConfig,
    TrainingConfig,
    parse_config,
)
from mangadistill.errors import ConfigError
from mangadistill.losses.kd import distillation_loss, feature_transfer_loss, fine_tune_loss
from mangadistill.training.distill import stage1_stop_rule, stage2_stop_rule
from mangadistill.training.loop import ClassificationTask, TrainResult, _decide, epoch_metric_names, train_classifier
from mangadistill.training.stop_rules import (
    DeploymentChoice,
    MissingMetricError,
    UnjudgeableMetricError,
    Stage1StopRule,
    Stage2StopRule,
    StopDecision,
    TeacherStopRule,
    select_deployment_epoch,
)
from mangadistill.training.tables import STAGE1, STAGE2, stage_report

# Runbook 6.4, Stage 1 epoch table: epoch, feature loss, attention loss, probe-head val acc, rare recall.
TABLE_6_4 = [
    {"epoch": e, "loss_feature": f, "loss_attention": a, "probe_val_accuracy": p, "rare_class_recall": r}
    for e, f, a, p, r in [
        (1, 1.842, 0.913, 0.784, 0.662),
        (2, 1.221, 0.642, 0.810, 0.694),
        (3, 0.944, 0.501, 0.826, 0.713),
        (4, 0.791, 0.438, 0.832, 0.720),
        (5, 0.714, 0.401, 0.835, 0.724),
        (6, 0.701, 0.392, 0.835, 0.725),
    ]
]

# Runbook 6.7, Stage 2 epoch table: epoch, CE loss, KD loss, total loss, val acc, rare recall, refusal precision.
TABLE_6_7 = [
    {
        "epoch": e,
        "loss_ce": ce,
        "loss_kd": kd,
        "loss_total": t,
        "val_accuracy": v,
        "rare_class_recall": r,
        "refusal_precision": rp,
    }
    for e, ce, kd, t, v, r, rp in [
        (1, 0.921, 1.404, 1.259, 0.868, 0.774, 0.921),
        (2, 0.772, 1.115, 1.012, 0.881, 0.799, 0.934),
        (3, 0.681, 0.982, 0.892, 0.888, 0.811, 0.942),
        (4, 0.622, 0.914, 0.826, 0.892, 0.822, 0.948),
        (5, 0.593, 0.878, 0.792, 0.893, 0.826, 0.951),
        (6, 0.582, 0.871, 0.785, 0.893, 0.828, 0.950),
        (7, 0.579, 0.870, 0.784, 0.892, 0.827, 0.948),
        (8, 0.567, 0.873, 0.781, 0.891, 0.823, 0.945),
    ]
]


# ------------------------------------------------------------------------------------ runbook table 6.4


def test_stage1_configured_reading_stops_table_6_4_after_epoch_6():
    # Runbook 6.5: "stop when all are true for 2 consecutive epochs ... That happens at epoch 5-6, so we stop
    # after epoch 6." The shipped default (Stage1StopConfig) reads it as the comparison of the two consecutive
    # epochs 5 and 6 (patience=1), with each loss's improvement measured against the first epoch's loss:
    #   epoch 6: feature (0.714-0.701)/1.842 = 0.71%, attention (0.401-0.392)/0.913 = 0.99%, probe +0.00 -> all hold
    #   epoch 5: feature (0.791-0.714)/1.842 = 4.18% -> does not hold, so the rule cannot fire earlier.
    rule = stage1_stop_rule(Stage1StopConfig())  # the rule training builds from the shipped defaults
    decision = rule.first_stop(TABLE_6_4)
    assert decision is not None and decision.epoch == 6
    assert "loss_feature improved 0.71% of the first epoch's loss (< 2.00%)" in decision.reason
    assert "loss_attention improved 0.99% of the first epoch's loss (< 2.00%)" in decision.reason
    assert rule.decide(TABLE_6_4[:5]).stop is False


def test_stage1_literal_reading_never_fires_on_table_6_4_because_attention_improved_2_24_percent():
    # Read literally (relative to the previous epoch, all three for 2 consecutive comparisons) the runbook's own
    # numbers do not stop:
    #   epoch 5 vs 4: feature (0.791-0.714)/0.791 = 9.73%  (>= 2%)  attention (0.438-0.401)/0.438 = 8.45% (>= 2%)
    #   epoch 6 vs 5: feature (0.714-0.701)/0.714 = 1.82%  (< 2%)   attention (0.401-0.392)/0.401 = 2.24% (>= 2%)
    # which is why the shipped default measures improvement against the first epoch (test above).
    rule = Stage1StopRule()
    assert rule.first_stop(TABLE_6_4) is None
    at_6 = rule.decide(TABLE_6_4)
    assert (at_6.stop, at_6.epoch) == (False, 6)
    assert at_6.conditions == {"loss_feature": True, "loss_attention": False, "probe_val_accuracy": True}
    assert "loss_attention improved 2.24% (>= 2.00%)" in at_6.reason
    assert "loss_feature improved 1.82% (< 2.00%)" in at_6.reason
    assert Stage1StopRule(patience=1).first_stop(TABLE_6_4) is None


def test_stage1_does_not_stop_after_epoch_5_of_table_6_4():
    decision = Stage1StopRule().decide(TABLE_6_4[:5])
    assert (decision.stop, decision.epoch) == (False, 5)
    assert decision.conditions == {"loss_feature": False, "loss_attention": False, "probe_val_accuracy": False}


def test_stage1_rejects_an_unknown_improvement_reference():
    with pytest.raises(ValueError, match="improvement_reference"):
        Stage1StopRule(improvement_reference="best")


# ------------------------------------------------------------------------------------ runbook table 6.7


def test_select_deployment_epoch_on_table_6_7_is_epoch_5():
    choice = select_deployment_epoch(TABLE_6_7)
    assert choice == DeploymentChoice(epoch=5, value=0.893, reason=choice.reason)
    assert "epoch 5 is the first to reach the best val_accuracy 0.8930 at epoch(s) 5, 6" in choice.reason


def test_stage2_rule_on_table_6_7_stops_after_epoch_7():
    # Runbook 10.2, >= 2 of 3 for 2 consecutive epochs; each epoch against the previous one:
    #   epoch | val acc gain (< 0.15 pt) | rare recall gain (< 0.25 pt) | KD loss rel. improvement (< 1%) | held
    #     2   | +1.30 no                 | +2.50 no                     | (1.404-1.115)/1.404 = 20.58% no  | 0/3
    #     3   | +0.70 no                 | +1.20 no                     | (1.115-0.982)/1.115 = 11.93% no  | 0/3
    #     4   | +0.40 no                 | +1.10 no                     | (0.982-0.914)/0.982 =  6.92% no  | 0/3
    #     5   | +0.10 YES                | +0.40 no                     | (0.914-0.878)/0.914 =  3.94% no  | 1/3
    #     6   | +0.00 YES                | +0.20 YES                    | (0.878-0.871)/0.878 =  0.80% YES | 3/3
    #     7   | -0.10 YES                | -0.10 YES                    | (0.871-0.870)/0.871 =  0.11% YES | 3/3
    #     8   | -0.10 YES                | -0.40 YES                    | (0.870-0.873)/0.870 = -0.34% YES | 3/3
    # The rule first holds on epoch 6, so the 2-consecutive-epoch stop comes after epoch 7 (epochs 6 and 7).
    # That is consistent with runbook 6.8: training ends at 7, and the deployment candidate is epoch 5.
    rule = Stage2StopRule()
    expected = {
        1: (False, False, False),
        2: (False, False, False),
        3: (False, False, False),
        4: (False, False, False),
        5: (True, False, False),
        6: (True, True, True),
        7: (True, True, True),
        8: (True, True, True),
    }
    for end in range(1, 9):
        decision = rule.decide(TABLE_6_7[:end])
        assert decision.epoch == end
        assert tuple(decision.conditions.values()) == expected[end], end
        assert list(decision.conditions) == ["val_accuracy", "rare_class_recall", "loss_kd"]
        assert decision.stop is (end >= 7), end

    first = rule.first_stop(TABLE_6_7)
    assert first is not None and first.epoch == 7
    assert "rule held for 2 consecutive epochs (6, 7)" in first.reason
    assert "loss_kd improved 0.11% (< 1.00%)" in first.reason


def test_stage2_after_epoch_6_of_table_6_7_reports_patience_not_yet_met():
    decision = Stage2StopRule().decide(TABLE_6_7[:6])
    assert not decision.stop
    assert "1 of 2 consecutive epochs so far" in decision.reason


# ------------------------------------------------------------------------------------- truth tables


def _s1(epoch, feature, attention, probe):
    return {"epoch": epoch, "loss_feature": feature, "loss_attention": attention, "probe_val_accuracy": probe}


def _s1_step(epoch, prev, feature_flat, attention_flat, probe_flat):
    """Next Stage 1 record after `prev`: each flag picks a plateau (condition holds) or a real improvement."""
    return _s1(
        epoch,
        prev["loss_feature"] * (0.99 if feature_flat else 0.90),  # 1% vs 10% relative improvement
        prev["loss_attention"] * (0.99 if attention_flat else 0.90),
        prev["probe_val_accuracy"] + (0.001 if probe_flat else 0.01),  # 0.1 vs 1.0 points
    )


@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=3)))
def test_stage1_truth_table_needs_all_three_conditions(flags):
    start = _s1(1, 1.0, 1.0, 0.80)
    history = [start, _s1_step(2, start, *flags)]
    decision = Stage1StopRule(patience=1).decide(history)
    assert tuple(decision.conditions.values()) == flags
    assert decision.stop is all(flags)


@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=3)))
def test_stage2_truth_table_needs_two_of_three(flags):
    start = {"epoch": 1, "val_accuracy": 0.80, "rare_class_recall": 0.70, "loss_kd": 1.0}
    acc_flat, rare_flat, kd_flat = flags
    nxt = {
        "epoch": 2,
        "val_accuracy": 0.80 + (0.001 if acc_flat else 0.005),
        "rare_class_recall": 0.70 + (0.001 if rare_flat else 0.005),
        "loss_kd": 0.995 if kd_flat else 0.95,
    }
    for required in (1, 2, 3):
        decision = Stage2StopRule(patience=1, required=required).decide([start, nxt])
        assert tuple(decision.conditions.values()) == flags
        assert decision.stop is (sum(flags) >= required), required


def _stage1_history(pattern):
    """History whose transitions follow `pattern` (True = all conditions hold on that epoch)."""
    history = [_s1(1, 1.0, 1.0, 0.80)]
    for i, flat in enumerate(pattern, start=2):
        history.append(_s1_step(i, history[-1], flat, flat, flat))
    return history


@pytest.mark.parametrize(
    ("pattern", "stops"),
    [
        ((True,), False),  # held once: patience 2 not met
        ((False, True), False),  # held only on the latest epoch
        ((True, True), True),  # held on epochs 2 and 3
        ((True, False, True), False),  # a gap resets the count
        ((True, False, True, True), True),  # ... and it builds up again
        ((True, True, False), False),  # decide judges the latest epoch, not whether it ever stopped
    ],
)
def test_stage1_patience_counts_consecutive_epochs_and_resets_on_a_gap(pattern, stops):
    assert Stage1StopRule().decide(_stage1_history(pattern)).stop is stops


def test_first_stop_returns_the_first_stopping_epoch_and_its_reason():
    history = _stage1_history((False, True, True, True, False))
    decision = Stage1StopRule().first_stop(history)
    assert isinstance(decision, StopDecision)
    assert (decision.stop, decision.epoch) == (True, 4)
    assert "rule held for 2 consecutive epochs (3, 4)" in decision.reason
    assert decision.reason.startswith("stage 1: stop after epoch 4: loss_feature improved 1.00% (< 2.00%)")


def test_stage2_gap_resets_patience():
    base = {"val_accuracy": 0.80, "rare_class_recall": 0.70, "loss_kd": 1.0}
    flat = {"val_accuracy": 0.0, "rare_class_recall": 0.0, "loss_kd": 0.0}
    moving = {"val_accuracy": 0.01, "rare_class_recall": 0.01, "loss_kd": 0.0}  # kd flat, accuracies move: 1 of 3
    history = [{"epoch": 1, **base}]
    for epoch, step in enumerate([flat, moving, flat], start=2):
        prev = history[-1]
        history.append({"epoch": epoch, **{k: prev[k] + step[k] for k in base}})
    rule = Stage2StopRule()
    assert [rule.decide(history[:n]).stop for n in range(1, 5)] == [False, False, False, False]
    assert rule.first_stop(history) is None


def test_thresholds_are_strict_and_decimal_boundaries_do_not_flip_on_float_rounding():
    # Exactly 2% relative loss improvement and exactly 0.2 points probe gain are not "< threshold".
    # In floats 0.813 - 0.811 = 0.00199999..., which a bare `<` would count as below 0.002.
    assert 0.813 - 0.811 < 0.002
    at_boundary = [_s1(1, 1.0, 1.0, 0.811), _s1(2, 0.98, 0.98, 0.813)]
    assert Stage1StopRule(patience=1).decide(at_boundary).conditions == {
        "loss_feature": False,
        "loss_attention": False,
        "probe_val_accuracy": False,
    }
    just_below = [_s1(1, 1.0, 1.0, 0.832), _s1(2, 0.981, 0.981, 0.8339)]
    assert Stage1StopRule(patience=1).decide(just_below).stop


def test_first_epoch_never_stops_even_with_the_loosest_rule():
    loosest = Stage2StopRule(
        min_accuracy_gain=1.0, min_rare_recall_gain=1.0, min_kd_improvement=1.0, required=1, patience=1
    )
    decision = loosest.decide([TABLE_6_7[0]])
    assert (decision.stop, decision.epoch) == (False, 1)
    assert decision.conditions == {"val_accuracy": False, "rare_class_recall": False, "loss_kd": False}
    assert "no previous epoch" in decision.reason
    assert loosest.first_stop(TABLE_6_7).epoch == 2


def test_rules_keep_no_state_and_are_frozen():
    rule = Stage2StopRule()
    assert rule.decide(TABLE_6_7) == rule.decide(TABLE_6_7)
    assert rule.decide(TABLE_6_7[:6]).stop is False  # an earlier stop does not stick
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.patience = 5


def test_key_names_are_configurable():
    renamed = [
        {"epoch": r["epoch"], "feat": r["loss_feature"], "attn": r["loss_attention"], "probe": r["probe_val_accuracy"]}
        for r in TABLE_6_4
    ]
    rule = Stage1StopRule(feature_loss_key="feat", attention_loss_key="attn", probe_accuracy_key="probe")
    assert rule.decide(renamed).conditions == {"feat": True, "attn": False, "probe": True}


# ------------------------------------------------------------------------------------------- errors


def test_missing_metric_names_the_key_and_the_epoch():
    history = [dict(r) for r in TABLE_6_7[:4]]
    del history[2]["loss_kd"]
    with pytest.raises(KeyError, match=r"epoch 3 has no metric 'loss_kd'"):
        Stage2StopRule().decide(history)
    with pytest.raises(KeyError, match=r"epoch 3 has no metric 'loss_kd'"):
        Stage2StopRule().first_stop(history)  # validates the whole table, not only the replayed prefix


def test_missing_epoch_key_is_reported():
    with pytest.raises(KeyError, match=r"record #1 .* no 'epoch' key"):
        Stage1StopRule().decide([TABLE_6_4[0], {k: v for k, v in TABLE_6_4[1].items() if k != "epoch"}])


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([], "history is empty"),
        ([TABLE_6_4[1], TABLE_6_4[0]], "strictly increasing"),
        ([TABLE_6_4[0], {**TABLE_6_4[1], "loss_feature": float("nan")}], "epoch 2: metric 'loss_feature' is nan"),
        ([{**TABLE_6_4[0], "epoch": 1.5}], "whole number"),
    ],
)
def test_bad_histories_raise_value_error(history, message):
    with pytest.raises(ValueError, match=message):
        Stage1StopRule().decide(history)


def test_first_stop_on_an_empty_history_is_none():
    assert Stage1StopRule().first_stop([]) is None


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (Stage1StopRule, {"min_feature_improvement": -0.01}, "min_feature_improvement"),
        (Stage1StopRule, {"min_attention_improvement": float("nan")}, "min_attention_improvement"),
        (Stage1StopRule, {"min_probe_gain": float("inf")}, "min_probe_gain"),
        (Stage1StopRule, {"patience": 0}, "patience"),
        (Stage1StopRule, {"patience": 1.5}, "patience"),
        (Stage1StopRule, {"feature_loss_key": ""}, "feature_loss_key"),
        (Stage1StopRule, {"probe_accuracy_key": "epoch"}, "probe_accuracy_key"),
        (Stage1StopRule, {"attention_loss_key": "loss_feature"}, "distinct"),
        (Stage2StopRule, {"min_accuracy_gain": -1.0}, "min_accuracy_gain"),
        (Stage2StopRule, {"min_rare_recall_gain": "0.1"}, "min_rare_recall_gain"),
        (Stage2StopRule, {"min_kd_improvement": -0.5}, "min_kd_improvement"),
        (Stage2StopRule, {"required": 0}, "required"),
        (Stage2StopRule, {"required": 4}, "required"),
        (Stage2StopRule, {"patience": -1}, "patience"),
        (Stage2StopRule, {"kd_loss_key": None}, "kd_loss_key"),
    ],
)
def test_rule_parameters_are_validated(cls, kwargs, field):
    with pytest.raises(ValueError, match=field):
        cls(**kwargs)


# --------------------------------------------------------------------------------- deployment epoch


@pytest.mark.parametrize(
    ("tolerance", "epoch", "value"),
    [
        (0.0, 5, 0.893),
        (0.0005, 5, 0.893),  # 0.892 is 0.1 points below the best: outside
        (0.001, 4, 0.892),  # exactly 0.1 points below the best counts as within
        (0.03, 1, 0.868),
    ],
)
def test_select_deployment_epoch_tolerance_prefers_earlier_near_best_epochs(tolerance, epoch, value):
    choice = select_deployment_epoch(TABLE_6_7, tolerance=tolerance)
    assert (choice.epoch, choice.value) == (epoch, value)
    if epoch != 5:
        assert f"first within tolerance {tolerance:g} of the best val_accuracy 0.8930" in choice.reason


def test_select_deployment_epoch_on_another_metric():
    choice = select_deployment_epoch(TABLE_6_7, metric="rare_class_recall")
    assert (choice.epoch, choice.value) == (6, 0.828)


def test_select_deployment_epoch_errors():
    with pytest.raises(KeyError, match=r"epoch 1 has no metric 'macro_f1'"):
        select_deployment_epoch(TABLE_6_7, metric="macro_f1")
    with pytest.raises(ValueError, match="tolerance"):
        select_deployment_epoch(TABLE_6_7, tolerance=-0.001)
    with pytest.raises(ValueError, match="history is empty"):
        select_deployment_epoch([])


# ------------------------------------------------------------------ stage reports (what train_student logs)
def _stage2_result_on_table_6_7() -> TrainResult:
    """Table 6.7 as training would leave it: the 10.2 rule stops after epoch 7, epoch 5 is deployed."""
    history = [{**row, "loss_hard": row["loss_ce"]} for row in TABLE_6_7[:7]]
    rule = Stage2StopRule()
    decisions = [rule.decide(history[:end]) for end in range(1, 8)]
    choice = select_deployment_epoch(history)
    return TrainResult(history=history, best_epoch=choice.epoch, best_val_accuracy=choice.value, train_seconds=1.0,
                       stop_reason=decisions[-1].reason, stopped_by_rule=True, deployment_reason=choice.reason,
                       decisions=[d.reason for d in decisions])


def test_stage2_report_on_table_6_7_has_the_runbook_shape_the_candidate_and_the_stop():
    result = _stage2_result_on_table_6_7()
    report = stage_report(result, STAGE2)
    lines = report.markdown.splitlines()
    assert lines[0] == "| Epoch | CE loss | KD loss | Total loss | Val acc | Rare recall | Refusal precision | Notes |"
    row5 = next(line for line in lines if line.startswith("| 5 "))
    assert "| 0.593 | 0.878 | 0.792 | 89.3% | 82.6% | 95.1% | deployment candidate (first best val acc) |" in row5
    assert lines[-1].startswith("| 7 ") and lines[-1].endswith("| stop rule fired |")
    assert len([line for line in lines if "deployment candidate" in line]) == 1
    assert report.csv.splitlines()[5].startswith("5,0.593,0.878,0.792,0.893,0.826,0.951,deployment candidate")
    assert report.summary == ("7 epochs (stop rule, runbook 10.2), loss_kd 1.404 -> 0.870, kept epoch 5 "
                              "(val_accuracy 89.3%)")
    stop_lines = report.stop_report.splitlines()
    assert stop_lines[0] == f"stopped: {result.stop_reason}" and stop_lines[1] == f"kept: {result.deployment_reason}"
    assert [line.split(":")[0] for line in stop_lines[3:]] == [f"epoch {e}" for e in range(1, 8)]


def test_stage1_report_never_marks_a_deployment_candidate_and_names_the_epoch_budget():
    result = TrainResult(history=[dict(row) for row in TABLE_6_4[:3]], best_epoch=3, best_val_accuracy=0.826,
                         stop_reason="epoch budget reached (3 epochs)", stopped_by_rule=False,
                         decisions=["continue", "continue", "continue"])
    report = stage_report(result, STAGE1)
    lines = report.markdown.splitlines()
    assert lines[0] == "| Epoch | Feature loss | Attention loss | Val acc (probe head) | Rare recall | Notes |"
    assert "deployment candidate" not in report.markdown and lines[-1].endswith("| epoch budget reached |")
    assert report.summary == ("3 epochs (epoch budget), loss_feature 1.842 -> 0.944, kept epoch 3 "
                              "(probe_val_accuracy 82.6%)")



# ---------------------------------------------- a rule reads only metrics its stage logs (config, loop, errors)


def test_missing_and_non_finite_metrics_are_distinct_errors():
    history = [dict(r) for r in TABLE_6_7[:3]]
    del history[2]["loss_kd"]
    with pytest.raises(MissingMetricError) as missing:
        Stage2StopRule(kd_loss_key="loss_kd").decide(history)
    assert isinstance(missing.value, KeyError) and str(missing.value).startswith("epoch 3 has no metric 'loss_kd'")
    nan = [TABLE_6_7[0], {**TABLE_6_7[1], "rare_class_recall": float("nan")}]
    with pytest.raises(UnjudgeableMetricError, match="epoch 2: metric 'rare_class_recall' is nan"):
        Stage2StopRule(kd_loss_key="loss_kd").decide(nan)


def test_rules_name_the_metrics_they_read():
    assert Stage1StopRule().metric_keys == ("loss_feature", "loss_attention", "probe_val_accuracy")
    assert Stage2StopRule(kd_loss_key="val_loss_kd").metric_keys == ("val_accuracy", "rare_class_recall", "val_loss_kd")


def test_a_stage2_rule_on_loss_kd_without_the_kd_term_is_a_config_error():
    raw = {"student": {"stage2": {"kd": {"alpha": 0.0}, "stop": {"kd_loss": "loss_kd"}}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, DistillIntentConfig, source="x.yaml")
    assert str(caught.value).startswith("x.yaml: student.stage2: stop.kd_loss: 'loss_kd' is not logged when kd.alpha is 0")
    assert caught.value.exit_code == 2
    for fine in ({"kd_loss": "val_loss_kd"}, {"kd_loss": "loss_kd", "enabled": False}):
        parse_config({"student": {"stage2": {"kd": {"alpha": 0.0}, "stop": fine}}}, DistillIntentConfig)


def _task(n_val=6, refusal=True):
    texts = [f"query {i}" for i in range(12)]
    labels = np.array([i % 3 for i in range(12)])
    logits = np.eye(3, dtype=np.float32)[labels] * 4
    return ClassificationTask(texts, labels, texts[:n_val], labels[:n_val], num_labels=3, rare_ids=[2],
                              refusal_id=0 if refusal else None, train_teacher_logits=logits,
                              val_teacher_logits=logits[:n_val])


@pytest.mark.parametrize(("alpha", "kd_loss", "feature_weight"),
                         itertools.product((0.0, 0.7, 1.0), ("val_loss_kd", "loss_kd"), (0.0, 1.0)))
def test_every_stage2_config_that_validates_has_a_rule_whose_metrics_stage2_logs(alpha, kd_loss, feature_weight):
    """The config validator is exact: it rejects precisely the Stage 2 configs whose rule would read a missing metric."""
    stage2 = {"kd": {"alpha": alpha, "feature_weight": feature_weight}, "stop": {"kd_loss": kd_loss}}
    logged = epoch_metric_names(distillation_loss(KDConfig(alpha=alpha, feature_weight=feature_weight)), _task())
    rule = Stage2StopRule(kd_loss_key=kd_loss)
    try:
        config = parse_config({"student": {"stage2": stage2}}, DistillIntentConfig)
    except ConfigError:
        assert not set(rule.metric_keys) <= logged
    else:
        assert set(stage2_stop_rule(config.student.stage2.stop).metric_keys) <= logged


@pytest.mark.parametrize(("feature_weight", "attention_weight"), [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0)])
def test_stage1_rule_reads_what_stage1_logs_for_any_loss_weights(feature_weight, attention_weight):
    stage1 = Stage1Config(feature_weight=feature_weight, attention_weight=attention_weight)
    logged = epoch_metric_names(feature_transfer_loss(stage1), _task(), probe=True)
    assert set(stage1_stop_rule(stage1.stop).metric_keys) <= logged


@pytest.fixture(scope="module")
def tiny():
    from transformers import BertConfig, BertForSequenceClassification

    from mangadistill.config import PACKAGED_MINILM
    from mangadistill.models.encoders import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(resolve_model_path(PACKAGED_MINILM))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=3)
    return BertForSequenceClassification(config), tokenizer


@pytest.mark.parametrize(("loss", "probe", "refusal"),
                         [(distillation_loss(KDConfig()), False, True), (fine_tune_loss(), True, False)])
def test_epoch_metric_names_are_the_keys_the_loop_logs(tiny, loss, probe, refusal):
    model, tokenizer = tiny
    task = _task(refusal=refusal)
    result = train_classifier(model, tokenizer, task, loss, TrainingConfig(epochs=1, batch_size=6, max_length=8),
                              temperature=4.0, probe=probe)
    assert set(result.history[0]) == epoch_metric_names(loss, task, probe)


def test_a_rule_reading_an_unlogged_metric_stops_before_the_first_epoch(tiny):
    model, tokenizer = tiny
    epochs = []
    with pytest.raises(ConfigError, match=r"the stage 2 stop rule reads 'loss_kd', which stage 2 does not log"):
        train_classifier(model, tokenizer, _task(), fine_tune_loss(), TrainingConfig(epochs=1, max_length=8),
                         desc="stage 2", stop_rule=Stage2StopRule(kd_loss_key="loss_kd"), on_epoch_end=epochs.append)
    assert epochs == []


def test_the_loop_raises_on_a_missing_metric_and_waits_out_a_nan_one():
    rule = Stage2StopRule(kd_loss_key="loss_kd")
    history = [dict(r) for r in TABLE_6_7[:2]]
    del history[1]["loss_kd"]
    with pytest.raises(MissingMetricError):
        _decide(rule, history, 2)
    # no rare-class row in validation: recall is NaN, which the rule cannot judge; the stage runs its epoch budget
    nan = [{**r, "rare_class_recall": float("nan")} for r in TABLE_6_7[:2]]
    decision = _decide(rule, nan, 2)
    assert not decision.stop and decision.reason.startswith("stop rule not applied after epoch 2: epoch 1: metric "
                                                            "'rare_class_recall' is nan")


def test_teacher_rule_stops_once_accuracy_and_validation_loss_both_stall():
    rule = TeacherStopRule()  # < 0.15 pt accuracy gain and < 2 % val-loss improvement, one epoch
    history = [{"epoch": 1, "val_accuracy": 0.90, "val_loss": 0.60},
               {"epoch": 2, "val_accuracy": 0.95, "val_loss": 0.30},
               {"epoch": 3, "val_accuracy": 0.951, "val_loss": 0.25},   # accuracy stalls, loss still falls: train on
               {"epoch": 4, "val_accuracy": 0.951, "val_loss": 0.248}]  # both stall: stop
    assert not rule.decide(history[:3]).stop
    decision = rule.first_stop(history)
    assert decision is not None and decision.epoch == 4 and "both held" in decision.reason
    still_learning = [{"epoch": 1, "val_accuracy": 0.844, "val_loss": 0.9}, {"epoch": 2, "val_accuracy": 0.852, "val_loss": 0.7},
                      {"epoch": 3, "val_accuracy": 0.860, "val_loss": 0.69}]  # a larger label set still gaining
    assert rule.first_stop(still_learning) is None
    assert TeacherStopRule(patience=2).first_stop(history) is None
    assert set(TeacherStopRule().metric_keys) == {"val_accuracy", "val_loss"}
