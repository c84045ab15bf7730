"""The `responder` family's pure parts (label -> action, action quality, the shadow comparison, the
runbook 7.7 gates and 15.3 triggers, and the promote/monitor YAMLs that document them), and the response
track's events (runbook 7.11, 11.3) and tables."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mangadistill.config import MonitorConfig, PromoteConfig, load_config
from mangadistill.config.lifecycle import GateSpec, TriggerSpec
from mangadistill.families.responder import ResponderFamily, action_quality, expected_action
from mangadistill.lifecycle.shadow import Replay
from mangadistill.response.events import distilled_model_eval, gate_eval
from mangadistill.response.tables import COMPARISON_ROWS, comparison_rows, epoch_table

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAMILY = ResponderFamily()

# ------------------------------------------------------------------------------------- label -> action


@pytest.mark.parametrize("label, action", [
    ("answer", "answer"), ("refuse", "refuse"), ("escalate", "escalate"),  # action labels
    ("out_of_scope", "refuse"), ("escalation", "escalate"),  # intent labels with an action of their own
    ("order_status", "answer"), ("recommendation", "answer"),  # any other intent is answered
    ("", None),  # unlabelled
])
def test_expected_action(label, action):
    assert expected_action(label) == action


# ------------------------------------------------------------------------------------------ action quality

#: (detected action, hallucinated, traffic label) per row; expected actions in the comment.
ROWS = [
    ("answer", True, "answer"),  # answer
    ("refuse", False, "refuse"),  # refuse, correct
    ("refuse", False, "out_of_scope"),  # refuse, correct
    ("escalate", False, "escalation"),  # escalate, correct
    ("refuse", False, ""),  # unlabelled: counts for hallucination only
    ("refuse", True, "order_status"),  # answer: a false refusal
    ("answer", False, "out_of_scope"),  # refuse: a missed refusal
    ("escalate", False, "answer"),  # answer: a false escalation
]


def test_action_quality_by_hand():
    actions, hallucinated, labels = (list(column) for column in zip(*ROWS, strict=True))
    metrics = action_quality(actions, hallucinated, labels)
    # hallucination over all 8 answers: rows 0 and 5
    assert metrics["hallucination_rate"] == pytest.approx(2 / 8)
    # labelled rows only (row 4 left out): refusals predicted 1, 2, 5; expected 1, 2, 6; correct 1, 2
    assert metrics["refusal_precision"] == pytest.approx(2 / 3)
    assert metrics["refusal_recall"] == pytest.approx(2 / 3)
    # escalations predicted 3, 7; expected 3; correct 3
    assert metrics["escalation_precision"] == pytest.approx(1 / 2)
    assert metrics["escalation_recall"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------- shadow comparison


def _replay(actions, hallucinated):
    answers = [{"answer": f"{action} #{i}", "action": action, "hallucinated": flag, "unsupported_claims": []}
               for i, (action, flag) in enumerate(zip(actions, hallucinated, strict=True))]
    return Replay(answers=answers, latency_ms=np.full(len(actions), 10.0))


def test_compare_two_replays():
    traffic = SimpleNamespace(rows=pd.DataFrame({
        "text": ["hi", "free scans?", "how much is Berserk?", "I want a human", "my order is late"],
        "label": ["answer", "out_of_scope", "answer", "escalation", "order_status"]}))
    production = _replay(["answer", "refuse", "answer", "escalate", "answer"], [False] * 5)
    staging = _replay(["answer", "answer", "answer", "escalate", "escalate"], [False, False, True, False, False])
    metrics, bucket = FAMILY.compare(production, staging, traffic, FAMILY.options_model())
    assert metrics["sample_size"] == 5.0
    assert metrics["action_agreement"] == pytest.approx(3 / 5) and metrics["disagreements"] == 2.0
    # refusals: production 1/5, staging 0/5; escalations: production 1/5, staging 2/5
    assert metrics["refusal_rate_abs_delta"] == pytest.approx(0.2)
    assert metrics["escalation_rate_abs_delta"] == pytest.approx(0.2)
    assert metrics["staging_hallucination_rate"] == pytest.approx(1 / 5)
    assert metrics["production_hallucination_rate"] == 0.0
    assert bucket["text"].tolist() == ["free scans?", "my order is late"]
    assert bucket["production_action"].tolist() == ["refuse", "answer"]
    assert bucket["staging_action"].tolist() == ["answer", "escalate"]
    assert bucket["staging_answer"].tolist() == ["answer #1", "escalate #4"]
    assert list(bucket.index) == [0, 1]


# ------------------------------------------------------------------------------------- gates and triggers


def test_default_offline_gates_are_runbook_7_7_and_the_15_1_checklist():
    gates = FAMILY.default_offline_gates()
    bounds = {name: (gate.min, gate.max) for name, gate in gates.items() if gate.enabled}
    assert bounds == {
        "teacher_preference_match": (0.85, None),
        "win_rate_vs_base": (0.65, None),
        "hallucination_rate": (None, 0.04),
        "refusal_precision": (0.94, None),
        "cost_reduction": (0.5, None),
        "rollback_target": (1.0, None),
        "observability": (1.0, None),
    }
    assert not gates["latency_p95"].enabled  # 7.7 gives no latency SLO for answers


def test_default_triggers_are_runbook_15_3():
    triggers = FAMILY.default_triggers()
    assert triggers["hallucination_rate"] == TriggerSpec(benchmark="hallucination_rate", max_rise_points=1.0)
    assert triggers["refusal_precision"] == TriggerSpec(benchmark="refusal_precision", max_drop_points=2.0)
    assert triggers["latency_p95_ms"] == TriggerSpec(benchmark="latency_p95_ms", max_rise_fraction=0.20)
    assert set(triggers) == set(FAMILY.monitored_metrics)


def test_default_shadow_gates_are_runbook_15_2():
    gates = FAMILY.default_shadow_gates()
    assert gates["action_agreement"] == GateSpec(category="shadow", metric="action_agreement", min=0.85)
    assert {g.metric for g in gates.values()} == {"action_agreement", "refusal_rate_abs_delta",
                                                  "escalation_rate_abs_delta", "staging_hallucination_rate"}


def test_promote_responder_yaml_equals_the_family_defaults():
    config = load_config(CONFIGS / "promote_responder.yaml", PromoteConfig)
    assert config.family == "responder" and config.registered_model == FAMILY.model_name
    assert config.offline_gates is not None and config.shadow.gates is not None  # the YAML spells them out
    assert config.offline_gate_set() == FAMILY.default_offline_gates()
    assert config.shadow_gate_set() == FAMILY.default_shadow_gates()


def test_monitor_responder_yaml_equals_the_family_defaults():
    config = load_config(CONFIGS / "monitor_responder.yaml", MonitorConfig)
    assert config.family == "responder" and config.triggers is not None
    assert config.trigger_set() == FAMILY.default_triggers()


# ------------------------------------------------------------------------------------------------ events

METRICS = {"teacher_preference_match": 0.87213, "win_rate_vs_base": 0.68149, "hallucination_rate": float("nan"),
           "refusal_precision": 0.944, "escalation_precision": 0.94666, "cost_reduction": 0.61}


def test_distilled_model_eval_has_runbook_7_11_keys_in_order():
    event = distilled_model_eval(student="s", teacher="t", epoch=3, metrics=METRICS, cost_reduction=0.612345)
    assert list(event) == ["event", "student", "teacher", "epoch", "teacher_preference_match",
                           "human_win_rate_vs_base", "hallucination_rate", "refusal_precision", "cost_reduction"]
    assert event["event"] == "distilled_model_eval" and event["epoch"] == 3
    assert event["teacher_preference_match"] == 0.8721 and event["human_win_rate_vs_base"] == 0.6815
    assert event["hallucination_rate"] is None  # NaN -> None (JSON has no NaN)
    assert event["cost_reduction"] == 0.6123
    assert distilled_model_eval(student="s", teacher="t", epoch=1, metrics={})["cost_reduction"] is None


def test_gate_eval_has_runbook_11_3_keys_in_order():
    event = gate_eval(run_id="r", student="s", teacher="t", metrics=METRICS, decision="promote_shadow")
    assert list(event) == ["event", "run_id", "student", "teacher", "teacher_preference_match",
                           "human_win_rate_vs_base", "catalog_hallucination_rate", "escalation_precision",
                           "cost_reduction", "decision"]
    assert event["catalog_hallucination_rate"] is None
    assert event["escalation_precision"] == 0.9467 and event["cost_reduction"] == 0.61
    assert event["decision"] == "promote_shadow"


# ------------------------------------------------------------------------------------------------ tables


def test_epoch_table_marks_the_kept_epoch():
    rows = [{"epoch": 1, "train_loss": 1.9, "val_rubric": 3.61, "hallucination_rate": 0.074, "p95_ms": 158.0},
            {"epoch": 2, "train_loss": 1.4, "val_rubric": 3.92, "hallucination_rate": 0.040, "p95_ms": 137.0,
             "stop_rule": "8.4: flat"},
            {"epoch": 3, "train_loss": 1.1, "val_rubric": float("nan"), "stop_rule": "10.2: stop"}]
    lines = epoch_table(rows, chosen=2).splitlines()
    assert lines[0].startswith("| Epoch | Train loss | Val rubric |") and lines[1].startswith("|---|")
    assert lines[1].count("---") == lines[0].count("|") - 1
    first, kept, last = lines[2:]
    assert kept.startswith("| 2 | 1.400 | 3.92 / 5 |") and kept.endswith("| 137 ms | kept; 8.4: flat |")
    assert "4.0%" in kept  # hallucination as a percentage
    assert "kept" not in first and first.endswith("| 158 ms |  |")
    assert "| n/a |" in last and last.endswith("| 10.2: stop |")
    assert "kept" not in epoch_table(rows, chosen=None)


def test_comparison_rows_format_each_model_and_nan_as_na():
    models = {"teacher": {"rubric": 4.31, "hallucination_rate": 0.036, "latency_p95_ms": 1234.4,
                          "cost_per_1k_usd": 0.12346, "tokens_per_s": 42.26, "factuality": 0.9},
              "student": {"rubric": float("nan"), "hallucination_rate": None}}
    rows = comparison_rows(models)
    assert [row[0] for row in rows] == [label for label, _, _ in COMPARISON_ROWS]
    by_label = {row[0]: row[1:] for row in rows}
    assert by_label["Rubric (7.5)"] == ["4.31 / 5", "n/a"]
    assert by_label["Catalog hallucination rate"] == ["3.6%", "n/a"]
    assert by_label["Generation p95"] == ["1,234 ms", "n/a"]
    assert by_label["Cost per 1K responses"] == ["$0.1235", "n/a"]
    assert by_label["Tokens / s"] == ["42.3", "n/a"]
    assert by_label["  factuality (0.30)"] == ["0.900", "n/a"]
    assert all(len(row) == 3 for row in rows)
    assert math.isnan(models["student"]["rubric"])  # the input is not modified
