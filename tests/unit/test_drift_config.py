"""The `drift_report` config: validation, shipped YAML files, relative paths, preflight of the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from mangadistill.config import DriftReportConfig, load_config, parse_config, resolve_relative_paths
from mangadistill.errors import ConfigError, DataError
from mangadistill.preflight import preflight

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(("name", "split"), [("drift_report.yaml", "gate"), ("drift_report_smoke.yaml", "train")])
def test_shipped_configs_validate(name, split):
    config = load_config(CONFIGS / name, DriftReportConfig)
    assert config.traffic.source == "simulator" and config.reference.split == split
    assert config.detection.drift_share == 0.3


def test_default_reference_is_the_held_out_gate_split():
    """Against the train split the model's own confidence drifts with nothing changed (a false alarm)."""
    assert DriftReportConfig().reference.split == "gate"
    assert load_config(CONFIGS / "drift_report.yaml", DriftReportConfig) == DriftReportConfig()


@pytest.mark.parametrize(("raw", "message"), [
    ({"traffic": {"source": "csv"}}, "path: required when source is 'csv'"),
    ({"traffic": {"path": "x.csv"}}, "path: only used with source csv or jsonl"),
    ({"traffic": {"simulator": {"drift": 1.5}}}, "traffic.simulator.drift: Input should be less than or equal to 1"),
    ({"detection": {"numerical_method": "chisquare"}}, "detection.numerical_method: Input should be"),
    ({"detection": {"drift_share": 0}}, "detection.drift_share: Input should be greater than 0"),
    ({"production_model": {"version": "v2"}}, "production_model.version: String should match pattern"),
    ({"embedding": {"components": 0}}, "embedding.components"),
    ({"reference": {"split": "test"}}, "reference.split: Input should be 'train', 'val' or 'gate'"),
    ({"detection": {"threshold": 0.1}}, "unknown key 'detection.threshold'"),
])
def test_invalid_values_fail_with_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as error:
        parse_config(raw, DriftReportConfig, source="x.yaml")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_traffic_path_is_resolved_against_the_config_folder(tmp_path):
    config = parse_config({"traffic": {"source": "jsonl", "path": "logs/today.jsonl"}}, DriftReportConfig)
    assert resolve_relative_paths(config, tmp_path).traffic.path == tmp_path / "logs" / "today.jsonl"
    simulated = DriftReportConfig()
    assert resolve_relative_paths(simulated, tmp_path) == simulated


def test_preflight_rejects_a_malformed_log_before_anything_runs(tmp_path):
    log = tmp_path / "today.csv"
    log.write_text("query\nwhere is my order\n")
    config = parse_config({"traffic": {"source": "csv", "path": str(log)}}, DriftReportConfig)
    with pytest.raises(DataError, match=r"today\.csv: missing column 'text' \(found: query\)"):
        preflight(config)
    log.write_text('text\n"  "\n')
    with pytest.raises(DataError, match=r"today\.csv: the traffic log has no usable rows \(1 read, all quarantined"):
        preflight(config)
    log.write_text("text\nwhere is my order\n")
    preflight(config)  # a readable log and the packaged encoder pass
