"""The promotion, monitoring and rollback configs: shipped files validate; runbook numbers; relative log paths."""

from pathlib import Path

import pytest

from mangadistill.config import MonitorIntentConfig, PromoteIntentConfig, load_config, resolve_relative_paths
from pipelines import PIPELINES

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["promote_intent", "promote_intent_smoke", "monitor_intent", "monitor_intent_smoke",
                                  "rollback_intent"])
def test_shipped_configs_validate(name):
    pipeline = name.removesuffix("_smoke")
    load_config(CONFIGS / f"{name}.yaml", PIPELINES[pipeline].config_model)


def test_production_config_carries_the_runbook_gates():
    config = load_config(CONFIGS / "promote_intent.yaml", PromoteIntentConfig)
    bounds = {name: (gate.min, gate.max, gate.enabled) for name, gate in config.offline_gates.items()}
    assert bounds["accuracy"] == (0.89, None, True) and bounds["rare_class_recall"] == (0.80, None, True)
    assert bounds["refusal_precision"] == (0.94, None, True) and bounds["latency_p95"] == (None, 6.0, True)
    assert bounds["cost_reduction"] == (0.5, None, True) and bounds["cold_start"][2] is False
    assert {g.category for g in config.offline_gates.values()} >= {"quality", "safety", "latency", "cost", "rollback",
                                                                  "observability"}
    assert config.rollout.plan == (0.05, 0.10, 0.25, 0.50, 1.0)
    triggers = load_config(CONFIGS / "monitor_intent.yaml", MonitorIntentConfig).triggers
    assert triggers["rare_class_recall"].max_drop_points == 3.0 and triggers["refusal_precision"].max_drop_points == 2.0
    assert triggers["latency_p95_ms"].max_rise_fraction == 0.20


def test_traffic_path_is_resolved_against_the_config_folder(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text("traffic: {source: csv, path: logs/traffic.csv}\n")
    config = resolve_relative_paths(load_config(path, MonitorIntentConfig), tmp_path)
    assert config.traffic.path == (tmp_path / "logs" / "traffic.csv").resolve()
    path.write_text("shadow: {traffic: {source: jsonl, path: t.jsonl}}\n")
    promote = resolve_relative_paths(load_config(path, PromoteIntentConfig), tmp_path)
    assert promote.shadow.traffic.path == (tmp_path / "t.jsonl").resolve()
