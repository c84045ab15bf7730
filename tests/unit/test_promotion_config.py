"""The life-cycle configs (promote, monitor, rollback): shipped files validate, runbook numbers, relative log
paths, and the family mechanism (unknown family, the family's options, a family registered by a test)."""

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field

import mangadistill.families as families
from mangadistill.config import (
    GateSpec,
    MonitorConfig,
    PromoteConfig,
    RollbackConfig,
    StrictModel,
    TriggerSpec,
    load_config,
    parse_config,
    resolve_relative_paths,
)
from mangadistill.errors import ConfigError
from mangadistill.families import Family, get_family, known_families, register_family
from mangadistill.families.intent import IntentFamily, IntentOptions
from pipelines import PIPELINES

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["promote_intent", "promote_intent_smoke", "monitor_intent", "monitor_intent_smoke",
                                  "rollback_intent"])
def test_shipped_configs_validate(name):
    pipeline = name.removesuffix("_smoke")
    config = load_config(CONFIGS / f"{name}.yaml", PIPELINES[pipeline].config_model)
    assert config.family == "intent" and config.registered_model == "mangaassist-intent"
    assert isinstance(config.family_options, IntentOptions)


@pytest.mark.parametrize("pipeline", ["promote", "monitor", "rollback"])
def test_family_generic_pipelines_find_the_intent_config(pipeline):
    entry = PIPELINES[pipeline]
    assert entry.family_generic and entry.default_config_for("intent") == CONFIGS / f"{pipeline}_intent.yaml"
    load_config(entry.default_config_for("intent"), entry.config_model)


def test_production_config_carries_the_runbook_gates():
    config = load_config(CONFIGS / "promote_intent.yaml", PromoteConfig)
    gates = config.offline_gate_set()
    bounds = {name: (gate.min, gate.max, gate.enabled) for name, gate in gates.items()}
    assert bounds["accuracy"] == (0.89, None, True) and bounds["rare_class_recall"] == (0.80, None, True)
    assert bounds["refusal_precision"] == (0.94, None, True) and bounds["latency_p95"] == (None, 6.0, True)
    assert bounds["cost_reduction"] == (0.5, None, True) and bounds["cold_start"][2] is False
    assert bounds["latency_ratio"] == (None, 1 / 3, True) and gates["latency_ratio"].metric == "p95_ratio_vs_teacher"
    assert gates["accuracy"].metric == "accuracy" and gates["latency_p95"].metric == "service_p95_ms"
    assert {g.category for g in gates.values()} >= {"quality", "safety", "latency", "cost", "rollback",
                                                    "observability"}
    assert config.shadow_gate_set()["agreement"].min == 0.85
    assert config.rollout.plan == (0.05, 0.10, 0.25, 0.50, 1.0)
    assert config.family_options == IntentOptions(refusal_label="out_of_scope", escalation_labels=("escalation",))
    triggers = load_config(CONFIGS / "monitor_intent.yaml", MonitorConfig).trigger_set()
    assert triggers["rare_class_recall"].max_drop_points == 3.0 and triggers["refusal_precision"].max_drop_points == 2.0
    assert triggers["latency_p95_ms"].max_rise_fraction == 0.20
    assert {t.benchmark for t in triggers.values()} == {"rare_class_recall", "refusal_precision", "latency_p95_ms"}


def test_smoke_config_overrides_only_the_gates_it_names():
    smoke = load_config(CONFIGS / "promote_intent_smoke.yaml", PromoteConfig).offline_gate_set()
    full = load_config(CONFIGS / "promote_intent.yaml", PromoteConfig).offline_gate_set()
    assert list(smoke) == list(full)
    assert smoke["accuracy"].min == 0.0 and smoke["rare_class_recall"].enabled is False
    assert smoke["observability"] == full["observability"] and smoke["rollback_target"] == full["rollback_target"]


def test_left_out_gates_and_triggers_are_the_family_defaults():
    promote, monitor = parse_config({}, PromoteConfig), parse_config({}, MonitorConfig)
    assert promote.offline_gates is None and promote.shadow.gates is None and monitor.triggers is None
    assert promote.offline_gate_set() == IntentFamily().default_offline_gates()
    assert promote.shadow_gate_set() == IntentFamily().default_shadow_gates()
    assert monitor.trigger_set() == IntentFamily().default_triggers()
    assert promote.registered_model == "mangaassist-intent"
    assert parse_config({"model_name": "other"}, RollbackConfig).registered_model == "other"
    explicit = parse_config({"offline_gates": {"only": {"category": "quality", "metric": "accuracy", "min": 0.5}}},
                            PromoteConfig)
    assert list(explicit.offline_gate_set()) == ["only"]  # a given block replaces the defaults, it does not merge


def test_traffic_path_is_resolved_against_the_config_folder(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text("traffic: {source: csv, path: logs/traffic.csv}\n")
    config = resolve_relative_paths(load_config(path, MonitorConfig), tmp_path)
    assert config.traffic.path == (tmp_path / "logs" / "traffic.csv").resolve()
    path.write_text("shadow: {traffic: {source: jsonl, path: t.jsonl}}\n")
    promote = resolve_relative_paths(load_config(path, PromoteConfig), tmp_path)
    assert promote.shadow.traffic.path == (tmp_path / "t.jsonl").resolve()


# ------------------------------------------------------------------------------------------ families
@pytest.mark.parametrize("model", [PromoteConfig, MonitorConfig, RollbackConfig])
def test_unknown_family_is_one_line_naming_the_known_ones(model):
    with pytest.raises(ConfigError) as error:
        parse_config({"family": "no_such_family"}, model, source="x.yaml")
    message = str(error.value)
    assert "\n" not in message
    assert "family 'no_such_family' is unknown" in message and "known families: " in message
    for name in known_families():
        assert name in message.split("known families: ", 1)[1]
    with pytest.raises(ConfigError, match="known families: .*intent"):
        get_family("no_such_family")


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"escalation_labels": []}, "options.escalation_labels"),
        ({"refusal_label": ""}, "options.refusal_label"),
        ({"refusal_lable": "out_of_scope"}, "options.refusal_lable"),  # a typo is an unknown key, not ignored
    ],
)
def test_bad_family_options_name_the_key(options, where):
    with pytest.raises(ConfigError) as error:
        parse_config({"options": options}, PromoteConfig, source="p.yaml")
    message = str(error.value)
    assert "\n" not in message and where in message and "family intent" in message


class _EchoOptions(StrictModel):
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Test knob.")


class _EchoFamily(Family):
    """A tiny family declared by a test: its own options and gates, nothing copied from the life cycle."""

    name: ClassVar[str] = "echo-test"
    model_name: ClassVar[str] = "echo-test-model"
    options_model = _EchoOptions

    def default_offline_gates(self):
        return {"echo_quality": GateSpec(category="quality", metric="echo_score", min=0.7)}

    def default_shadow_gates(self):
        return {"echo_agreement": GateSpec(category="shadow", metric="echo_agreement", min=0.9)}

    def default_triggers(self):
        return {"echo_score": TriggerSpec(benchmark="echo_score", max_drop_points=5.0)}

    def load(self, name, version, record, num_threads=None):
        raise NotImplementedError

    def compare(self, production, staging, traffic, options):
        raise NotImplementedError

    def observe(self, replay, traffic, options):
        raise NotImplementedError


@pytest.fixture
def echo_family():
    known = dict(families._FAMILIES)
    family = register_family(_EchoFamily())
    yield family
    families._FAMILIES.clear()
    families._FAMILIES.update(known)


def test_a_family_registered_by_a_test_validates_its_options_and_supplies_its_defaults(echo_family):
    assert "echo-test" in known_families() and "intent" in known_families()
    assert families.family_for_model("echo-test-model") is echo_family
    promote = parse_config({"family": "echo-test", "options": {"threshold": 0.25}}, PromoteConfig)
    assert promote.family_options == _EchoOptions(threshold=0.25) and promote.registered_model == "echo-test-model"
    assert promote.offline_gate_set() == echo_family.default_offline_gates()
    assert promote.shadow_gate_set() == echo_family.default_shadow_gates()
    monitor = parse_config({"family": "echo-test"}, MonitorConfig)
    assert monitor.family_options == _EchoOptions() and monitor.trigger_set() == echo_family.default_triggers()
    with pytest.raises(ConfigError, match="options.threshold") as error:
        parse_config({"family": "echo-test", "options": {"threshold": 2.0}}, PromoteConfig)
    assert "family echo-test" in str(error.value)
    with pytest.raises(ConfigError, match="options.escalation_labels"):  # the intent family's options are not its
        parse_config({"family": "echo-test", "options": {"escalation_labels": ["x"]}}, PromoteConfig)
    with pytest.raises(ConfigError, match="options.threshold"):  # nor are its options the intent family's
        parse_config({"options": {"threshold": 0.25}}, PromoteConfig)


def test_the_test_family_is_gone_after_its_test():
    assert "echo-test" not in known_families()
    assert families.family_for_model("echo-test-model") is None
