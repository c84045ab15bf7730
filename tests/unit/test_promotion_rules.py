"""Pure life-cycle rules: gates, rollback triggers, rollout plan, shadow comparison.

Truth tables; no registry, no zenml.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from mangadistill.config import GateSpec, MonitorConfig, PromoteConfig, RolloutConfig, TriggerSpec, parse_config
from mangadistill.errors import ConfigError
from mangadistill.families.intent import IntentFamily, IntentOptions
from mangadistill.lifecycle.gates import evaluate_gate, evaluate_gates
from mangadistill.lifecycle.record import VersionRecord
from mangadistill.lifecycle.rollout import RolloutState, advance, parse_state
from mangadistill.lifecycle.shadow import Replay, latency_metrics
from mangadistill.lifecycle.triggers import TriggerDecision, evaluate_triggers
from mangadistill.traffic import TrafficLog

AT_LEAST = GateSpec(category="quality", metric="accuracy", min=0.89)
AT_MOST = GateSpec(category="latency", metric="latency_p95_ms", max=6.0)


# ------------------------------------------------------------------------------------------------ gates
@pytest.mark.parametrize(
    ("spec", "value", "status"),
    [
        (AT_LEAST, 0.93, "pass"), (AT_LEAST, 0.89, "pass"), (AT_LEAST, 0.8899, "fail"),
        (AT_LEAST, "0.95", "pass"),  # legacy (schema 0) values were tag strings
        (AT_LEAST, None, "fail"), (AT_LEAST, float("nan"), "fail"), (AT_LEAST, "nan", "fail"),
        (AT_LEAST, "n/a", "fail"), (AT_LEAST, True, "fail"),  # a bool is not a measurement
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
    assert record.op == (">=" if spec.min is not None else "<=")


def test_decision_names_every_failing_gate_and_is_recorded_on_the_version():
    gates = IntentFamily().default_offline_gates()
    metrics = {"accuracy": 0.93, "rare_class_recall": 0.85, "refusal_precision": 0.91, "service_p95_ms": 4.0,
               "p95_ratio_vs_teacher": 0.25, "cost_reduction": 0.6, "rollback_target_available": 1.0}
    decision = evaluate_gates("offline", gates, metrics)
    assert not decision.passed
    assert decision.failed == ["refusal_precision", "observability"]  # observability metric missing -> fails
    assert "refusal_precision: 0.91 >= 0.94 FAIL" in decision.reason and "observability: missing" in decision.reason
    assert "accuracy" not in decision.reason.replace("refusal_precision", "")  # passing gates are not named
    results = decision.results()
    assert results["accuracy"] == "0.93 >= 0.89 PASS" and results["refusal_precision"] == "0.91 >= 0.94 FAIL"
    assert results["observability"] == "missing >= 1 FAIL"
    # off by default: a new process's start is not a Lambda cold start
    assert results["cold_start"].endswith("SKIPPED")
    assert list(results) == list(gates) == [g["name"] for g in decision.to_dict()["gates"]]
    assert json.loads(decision.to_json())["passed"] is False

    record = VersionRecord(family="intent")
    record.record_gates("offline", "pass" if decision.passed else "fail", decision.reason, results)
    tags = record.to_tags()
    assert tags["gates"] == "offline fail"
    assert json.loads(tags["record"])["gates"]["offline"]["results"]["accuracy"] == "0.93 >= 0.89 PASS"
    assert not record.has_passing_gate_record


def test_all_passing_and_empty_gate_sets():
    gates = {"a": AT_LEAST, "b": AT_MOST}
    decision = evaluate_gates("offline", gates, {"accuracy": 0.9, "latency_p95_ms": 1.0})
    assert decision.passed and decision.failed == [] and decision.reason == "all 2 enabled gates passed"
    skipped = {**gates, "c": AT_LEAST.model_copy(update={"enabled": False})}
    decision = evaluate_gates("offline", skipped, {"accuracy": 0.9, "latency_p95_ms": 1.0})
    assert decision.passed and decision.reason == "all 2 enabled gates passed (1 skipped)"
    with pytest.raises(ValueError, match="empty"):
        evaluate_gates("offline", {}, {})


def test_gate_spec_needs_exactly_one_bound_and_a_known_category():
    with pytest.raises(ConfigError, match="exactly one of min or max"):
        parse_config({"offline_gates": {"x": {"category": "quality", "metric": "m"}}}, PromoteConfig)
    with pytest.raises(ConfigError, match="exactly one of min or max"):
        parse_config({"offline_gates": {"x": {"category": "quality", "metric": "m", "min": 0, "max": 1}}},
                     PromoteConfig)
    with pytest.raises(ConfigError, match="category"):
        parse_config({"offline_gates": {"x": {"category": "vibes", "metric": "m", "min": 1}}}, PromoteConfig)
    with pytest.raises(ConfigError, match="shadow.gates.x"):
        parse_config({"shadow": {"gates": {"x": {"category": "shadow", "metric": "m"}}}}, PromoteConfig)


# --------------------------------------------------------------------------------------------- triggers
BENCHMARK = {"rare_class_recall": 0.90, "refusal_precision": 0.95, "latency_p95_ms": 5.0}
TRIGGERS = MonitorConfig().trigger_set()  # the intent family's defaults


@pytest.mark.parametrize(
    ("observed", "fired"),
    [
        ({"rare_class_recall": 0.90, "refusal_precision": 0.95, "latency_p95_ms": 5.0}, []),
        ({"rare_class_recall": 0.871, "refusal_precision": 0.95, "latency_p95_ms": 5.0}, []),  # -2.9 pt: within
        ({"rare_class_recall": 0.87, "refusal_precision": 0.95, "latency_p95_ms": 5.0}, []),  # -3 pt exactly
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
    decision = evaluate_triggers(TRIGGERS, BENCHMARK, observed)
    assert [r.name for r in decision.records if r.status == "fired"] == fired
    assert decision.fired == bool(fired)
    for name in fired:
        assert name in decision.reason
    if not fired:
        assert decision.reason.startswith("no trigger fired")


def test_trigger_limits_and_legacy_string_benchmark():
    records = {r.name: r for r in evaluate_triggers(TRIGGERS, BENCHMARK, BENCHMARK).records}
    assert records["rare_class_recall"].limit == pytest.approx(0.87)
    assert records["rare_class_recall"].rule == "drop > 3 pt"
    assert records["latency_p95_ms"].limit == pytest.approx(6.0) and records["latency_p95_ms"].rule == "rise > 20%"
    as_strings = {key: str(value) for key, value in BENCHMARK.items()}  # a migrated schema-0 benchmark
    assert evaluate_triggers(TRIGGERS, as_strings, {"rare_class_recall": 0.5}).records[0].status == "fired"


def test_trigger_without_benchmark_or_observation_is_no_data_and_disabled_is_skipped():
    decision = evaluate_triggers(TRIGGERS, {"latency_p95_ms": 5.0}, {"rare_class_recall": 0.1})
    status = {r.name: r.status for r in decision.records}
    assert status == {"rare_class_recall": "no data", "refusal_precision": "no data", "latency_p95_ms": "no data"}
    assert not decision.fired and "no data for" in decision.reason
    off = {"r": TriggerSpec(benchmark="rare_class_recall", max_drop_points=3.0, enabled=False)}
    skipped = evaluate_triggers(off, BENCHMARK, {"r": 0.0})
    assert skipped.records[0].status == "skipped" and not skipped.fired


def test_trigger_decision_survives_the_hand_over_between_steps():
    decision = evaluate_triggers(TRIGGERS, BENCHMARK, {"rare_class_recall": 0.5, "refusal_precision": 0.95})
    assert decision.fired
    assert TriggerDecision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


def test_trigger_spec_needs_exactly_one_rule():
    with pytest.raises(ConfigError, match="exactly one of max_drop_points, max_rise_fraction or max_rise_points"):
        parse_config({"triggers": {"t": {"benchmark": "rare_class_recall"}}}, MonitorConfig)
    with pytest.raises(ConfigError, match="exactly one of max_drop_points, max_rise_fraction or max_rise_points"):
        parse_config({"triggers": {"t": {"benchmark": "b", "max_drop_points": 1.0, "max_rise_fraction": 0.1}}},
                     MonitorConfig)
    with pytest.raises(ConfigError, match="triggers.t.max_drop_points"):
        parse_config({"triggers": {"t": {"benchmark": "b", "max_drop_points": -1.0}}}, MonitorConfig)


# ---------------------------------------------------------------------------------------------- rollout
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
    assert parse_state(plan, "0.25").step == 2 and parse_state(plan, "0.3").step == -1  # off-plan share restarts
    assert parse_state(plan, "bogus").step == -1
    assert RolloutState((1.0,), 0).complete


def test_rollout_share_recorded_on_the_version_reads_back_onto_the_plan():
    plan = RolloutConfig().plan
    state, _ = advance(parse_state(plan, None), True, 3)
    record = VersionRecord(family="intent")
    record.record_rollout(state.share, state.label())
    again = VersionRecord.from_tags(record.to_tags())
    assert parse_state(plan, str(again.rollout.share)) == state and record.to_tags()["rollout"] == "25%"


def test_rollout_plan_must_increase_to_one():
    for plan in ([0.5, 0.25, 1.0], [0.1, 0.5], [0.0, 1.0], [0.5, 0.5, 1.0], [0.5, 1.5]):
        with pytest.raises(ConfigError, match="plan"):
            parse_config({"rollout": {"plan": plan}}, PromoteConfig)


# ----------------------------------------------------------------------------------------------- shadow
def _traffic(texts, labels):
    rows = pd.DataFrame({"text": texts, "label": labels})
    return TrafficLog(rows=rows, quarantine=pd.DataFrame(columns=["text", "label", "reason"]), source="test",
                      labelled=any(labels), rows_with_pii=0)


def _replay(intents, latency_ms):
    answers = [{"intent": intent, "confidence": 0.5 + i / 100} for i, intent in enumerate(intents)]
    return Replay(answers=answers, latency_ms=np.asarray(latency_ms, dtype=float))


TEXTS = ["where is my order", "talk to a human", "recommend a manga", "what is the weather", "refund please"]
LABELS = ["order_status", "escalation", "recommendation", "out_of_scope", "refund"]
PRODUCTION = ["order_status", "escalation", "recommendation", "out_of_scope", "refund"]
STAGING = ["order_status", "recommendation", "recommendation", "out_of_scope", "out_of_scope"]


def test_shadow_compare_agreement_rates_quality_and_disagreement_bucket():
    production, staging = _replay(PRODUCTION, [1.0] * 5), _replay(STAGING, [2.0] * 5)
    metrics, bucket = IntentFamily().compare(production, staging, _traffic(TEXTS, LABELS), IntentOptions())
    assert metrics["sample_size"] == 5 and metrics["agreement_rate"] == pytest.approx(3 / 5)
    assert metrics["disagreements"] == 2 == len(bucket)
    assert metrics["production_refusal_rate"] == pytest.approx(1 / 5)
    assert metrics["staging_refusal_rate"] == pytest.approx(2 / 5)
    assert metrics["refusal_rate_abs_delta"] == pytest.approx(1 / 5)
    assert metrics["production_escalation_rate"] == pytest.approx(1 / 5) and metrics["staging_escalation_rate"] == 0.0
    assert metrics["escalation_rate_abs_delta"] == pytest.approx(1 / 5)
    # labelled log: each model's quality (production is always right; staging misses the escalation, over-refuses)
    assert metrics["production_accuracy"] == 1.0 and metrics["staging_accuracy"] == pytest.approx(3 / 5)
    assert metrics["production_rare_class_recall"] == 1.0 and metrics["staging_rare_class_recall"] == 0.0
    assert metrics["staging_refusal_precision"] == pytest.approx(1 / 2)
    assert bucket["text"].tolist() == ["talk to a human", "refund please"]
    assert bucket["production_intent"].tolist() == ["escalation", "refund"]
    assert bucket["staging_intent"].tolist() == ["recommendation", "out_of_scope"]
    assert bucket["staging_confidence"].tolist() == [0.51, 0.54]

    gates = IntentFamily().default_shadow_gates()
    decision = evaluate_gates("shadow", gates, {**metrics, **latency_metrics(production, staging)})
    assert decision.failed == ["agreement", "refusal_rate_shift", "escalation_rate_shift", "staging_refusal_precision"]


def test_shadow_compare_uses_the_family_options_and_skips_quality_without_labels():
    production, staging = _replay(PRODUCTION, [1.0] * 5), _replay(PRODUCTION, [1.0] * 5)
    unlabelled = _traffic(TEXTS, [""] * 5)
    metrics, bucket = IntentFamily().compare(production, staging, unlabelled, IntentOptions())
    assert metrics["agreement_rate"] == 1.0 and bucket.empty
    assert not any(key.endswith("_accuracy") or key.endswith("_refusal_precision") for key in metrics)
    # the unlabelled log leaves staging_refusal_precision missing: that gate fails, as its comment says
    shadow = IntentFamily().default_shadow_gates()
    decision = evaluate_gates("shadow", shadow, {**metrics, **latency_metrics(production, staging)})
    assert decision.failed == ["staging_refusal_precision"]
    options = IntentOptions(refusal_label="refund", escalation_labels=("order_status", "recommendation"))
    metrics, _ = IntentFamily().compare(production, staging, unlabelled, options)
    assert metrics["production_refusal_rate"] == pytest.approx(1 / 5)
    assert metrics["production_escalation_rate"] == pytest.approx(2 / 5)


def test_shadow_latency_metrics_are_p95_and_the_staging_over_production_ratio():
    production = _replay(["a"] * 100, np.arange(1, 101))  # 1..100 ms
    staging = _replay(["a"] * 100, np.arange(1, 101) / 4)
    metrics = latency_metrics(production, staging)
    assert metrics["production_p95_latency_ms"] == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert metrics["staging_p95_latency_ms"] == pytest.approx(metrics["production_p95_latency_ms"] / 4)
    assert metrics["p95_latency_ratio"] == pytest.approx(0.25)


def test_rise_in_points_fires_past_the_baseline_plus_points():
    """Runbook 15.3: hallucination rate +1.0 point above baseline."""
    triggers = {"hallucination_rate": TriggerSpec(benchmark="hallucination_rate", max_rise_points=1.0)}
    ok = evaluate_triggers(triggers, {"hallucination_rate": 0.03}, {"hallucination_rate": 0.0395})
    fired = evaluate_triggers(triggers, {"hallucination_rate": 0.03}, {"hallucination_rate": 0.0405})
    assert not ok.fired and ok.records[0].limit == pytest.approx(0.04) and ok.records[0].rule == "rise > 1 pt"
    assert fired.fired and "hallucination_rate" in fired.reason
