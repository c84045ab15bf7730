"""Pure promotion rules: gate evaluation, rollback triggers, rollout plan (truth tables, no registry, no zenml)."""

import math

import pytest

from mangadistill.config import (
    GateSpec,
    MonitorIntentConfig,
    PromoteIntentConfig,
    RolloutConfig,
    TriggerSpec,
    parse_config,
)
from mangadistill.errors import ConfigError
from mangadistill.promotion.gates import evaluate_gate, evaluate_gates
from mangadistill.promotion.rollback import evaluate_triggers
from mangadistill.promotion.rollout import RolloutState, advance, parse_state

AT_LEAST = GateSpec(category="quality", metric="gate_accuracy", min=0.89)
AT_MOST = GateSpec(category="latency", metric="gate_latency_p95_ms", max=6.0)


@pytest.mark.parametrize(
    ("spec", "value", "status"),
    [
        (AT_LEAST, 0.93, "pass"), (AT_LEAST, 0.89, "pass"), (AT_LEAST, 0.8899, "fail"),
        (AT_LEAST, "0.95", "pass"),  # registry tags are strings
        (AT_LEAST, None, "fail"), (AT_LEAST, float("nan"), "fail"), (AT_LEAST, "nan", "fail"),
        (AT_LEAST, "n/a", "fail"),
        (AT_MOST, 5.0, "pass"), (AT_MOST, 6.0, "pass"), (AT_MOST, 6.01, "fail"), (AT_MOST, None, "fail"),
        (AT_LEAST.model_copy(update={"enabled": False}), 0.1, "skipped"),
        (AT_LEAST.model_copy(update={"enabled": False}), None, "skipped"),
    ],
)
def test_gate_truth_table(spec, value, status):
    metrics = {} if value is None else {spec.metric: value}
    record = evaluate_gate("g", spec, metrics)
    assert record.status == status
    assert record.passed == (status != "fail")
    assert record.threshold == (spec.min if spec.min is not None else spec.max)


def test_decision_names_every_failing_gate_and_writes_tags():
    gates = PromoteIntentConfig().offline_gates
    metrics = {"gate_accuracy": "0.93", "gate_rare_class_recall": "0.85", "gate_refusal_precision": "0.91",
               "gate_latency_p95_ms": "4.0", "cost_reduction": "0.6", "rollback_target_available": 1.0}
    decision = evaluate_gates("offline", gates, metrics)
    assert not decision.passed
    assert decision.failed == ["refusal_precision", "observability"]  # observability metric missing -> fails
    assert "refusal_precision: 0.91 >= 0.94 FAIL" in decision.reason and "observability: missing" in decision.reason
    tags = decision.to_tags()
    assert tags["gate.offline.decision"] == "fail" and tags["gate.offline.accuracy"] == "0.93 >= 0.89 PASS"
    # off by default: a new process's start is not a Lambda cold start
    assert tags["gate.offline.cold_start"].endswith("SKIPPED")
    assert [g["name"] for g in decision.to_dict()["gates"]] == list(gates)


def test_all_passing_and_empty_gate_sets():
    gates = {"a": AT_LEAST, "b": AT_MOST}
    decision = evaluate_gates("offline", gates, {"gate_accuracy": 0.9, "gate_latency_p95_ms": 1.0})
    assert decision.passed and decision.reason == "all 2 enabled gates passed"
    with pytest.raises(ValueError, match="empty"):
        evaluate_gates("offline", {}, {})


def test_gate_spec_needs_exactly_one_bound():
    with pytest.raises(ConfigError, match="exactly one of min or max"):
        parse_config({"offline_gates": {"x": {"category": "quality", "metric": "m"}}}, PromoteIntentConfig)
    with pytest.raises(ConfigError, match="category"):
        parse_config({"offline_gates": {"x": {"category": "vibes", "metric": "m", "min": 1}}}, PromoteIntentConfig)


BASELINE = {"gate_rare_class_recall": "0.90", "gate_refusal_precision": "0.95", "gate_latency_p95_ms": "5.0"}
TRIGGERS = MonitorIntentConfig().triggers


@pytest.mark.parametrize(
    ("observed", "fired"),
    [
        ({"rare_class_recall": 0.90, "refusal_precision": 0.95, "latency_p95_ms": 5.0}, []),
        ({"rare_class_recall": 0.871, "refusal_precision": 0.95, "latency_p95_ms": 5.0}, []),  # -2.9 pt: within
        ({"rare_class_recall": 0.869, "refusal_precision": 0.95, "latency_p95_ms": 5.0}, ["rare_class_recall"]),
        ({"rare_class_recall": 0.90, "refusal_precision": 0.929, "latency_p95_ms": 5.0}, ["refusal_precision"]),
        ({"rare_class_recall": 0.90, "refusal_precision": 0.931, "latency_p95_ms": 6.0}, []),  # +20% exactly: not over
        ({"rare_class_recall": 0.90, "refusal_precision": 0.95, "latency_p95_ms": 6.01}, ["latency_p95_ms"]),
        ({"rare_class_recall": 0.5, "refusal_precision": 0.5, "latency_p95_ms": 50.0},
         ["rare_class_recall", "refusal_precision", "latency_p95_ms"]),
        ({"rare_class_recall": math.nan, "refusal_precision": 0.95, "latency_p95_ms": 5.0}, []),  # no data: cannot fire
    ],
)
def test_rollback_trigger_truth_table(observed, fired):
    decision = evaluate_triggers(TRIGGERS, BASELINE, observed)
    assert [r.name for r in decision.records if r.status == "fired"] == fired
    assert decision.fired == bool(fired)
    for name in fired:
        assert name in decision.reason


def test_trigger_without_baseline_or_observation_is_no_data_and_disabled_is_skipped():
    decision = evaluate_triggers(TRIGGERS, {"gate_latency_p95_ms": "5.0"}, {"rare_class_recall": 0.1})
    status = {r.name: r.status for r in decision.records}
    assert status == {"rare_class_recall": "no data", "refusal_precision": "no data", "latency_p95_ms": "no data"}
    assert not decision.fired and "no data for" in decision.reason
    off = {"r": TriggerSpec(baseline_tag="gate_rare_class_recall", max_drop_points=3.0, enabled=False)}
    assert evaluate_triggers(off, BASELINE, {"r": 0.0}).records[0].status == "skipped"


def test_rollout_plan_advances_step_by_step_or_all_at_once():
    plan = RolloutConfig().plan
    start = parse_state(plan, None)
    assert start.step == -1 and start.label() == "not started"
    one, how = advance(start, True, 1)
    assert one.share == 0.05 and one.label() == "5% (shadow)" and how == "advanced 5%"
    two, _ = advance(one, True, 1)
    assert two.share == 0.10 and not two.complete
    held, why = advance(two, False, 1)
    assert held == two and "shadow evaluation failed" in why
    done, how = advance(two, True, None)
    assert done.complete and done.share == 1.0 and how == "advanced 25% -> 50% -> 100%"
    assert advance(done, True, 1) == (done, "already at 100%")
    assert parse_state(plan, "0.25").step == 2 and parse_state(plan, "0.3").step == -1  # off-plan tag restarts
    assert RolloutState((1.0,), 0).complete


def test_rollout_plan_must_increase_to_one():
    for plan in ([0.5, 0.25, 1.0], [0.1, 0.5], [0.0, 1.0], [0.5, 0.5, 1.0]):
        with pytest.raises(ConfigError, match="plan"):
            parse_config({"rollout": {"plan": plan}}, PromoteIntentConfig)
