"""The `distill_response` config: the YAML documents the defaults, the smoke config validates, and the
cross-field rules fail as one-line `ConfigError`s that name the key to set."""

from pathlib import Path

import pytest

from mangadistill.config import DistillResponseConfig, load_config, parse_config
from mangadistill.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_distill_response_yaml_equals_the_defaults():
    assert load_config(CONFIGS / "distill_response.yaml", DistillResponseConfig) == DistillResponseConfig()


def test_the_defaults_are_the_documented_numbers():
    config = DistillResponseConfig()
    assert (config.data.val_fraction, config.data.gate_fraction, config.data.review_fraction) == (0.1, 0.1, 0.15)
    assert config.teacher.backend == "reference" and config.evaluation.judge.kind == "deterministic"
    assert config.student.tiny is None and config.registry.model_name == "mangaassist-responder"


def test_the_smoke_config_validates_and_is_small():
    smoke = load_config(CONFIGS / "distill_response_smoke.yaml", DistillResponseConfig)
    assert (smoke.data.generated.n_rows, smoke.data.generated.n_golden) == (40, 10)
    assert smoke.student.tiny is not None and smoke.student.sft.epochs == 2
    assert smoke.student.sft.lora_layers == "all" and smoke.evaluation.max_new_tokens == 16
    # what it does not override comes from distill_response.yaml
    assert smoke.teacher == DistillResponseConfig().teacher
    assert smoke.student.sft.lora_r == 16


@pytest.mark.parametrize("raw, names", [
    ({"teacher": {"backend": "openai"}}, ("teacher.backend", "teacher.base_url")),
    ({"data": {"source": "jsonl"}}, ("data.source", "data.path")),
    ({"evaluation": {"judge": {"kind": "llm", "model": "gpt-4.1"}}}, ("evaluation.judge.kind", "base_url")),
    ({"evaluation": {"judge": {"kind": "llm", "base_url": "http://127.0.0.1:8000/v1"}}}, ("evaluation.judge", "model")),
])
def test_cross_field_rules_are_one_line_errors_naming_the_key(raw, names):
    with pytest.raises(ConfigError) as raised:
        parse_config(raw, DistillResponseConfig, source="my.yaml")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("my.yaml: ")
    for name in names:
        assert name in message, (name, message)


@pytest.mark.parametrize("raw", [
    {"teacher": {"backend": "openai", "base_url": "https://api.openai.com/v1"}},
    {"data": {"source": "jsonl", "path": "rows.jsonl"}},
    {"evaluation": {"judge": {"kind": "llm", "base_url": "http://127.0.0.1:8000/v1", "model": "judge"}}},
])
def test_the_same_settings_with_the_missing_key_validate(raw):
    parse_config(raw, DistillResponseConfig)


def test_an_unknown_key_and_a_value_out_of_range_name_their_key():
    with pytest.raises(ConfigError, match=r"unknown key 'teacher.modle'"):
        parse_config({"teacher": {"modle": "x"}}, DistillResponseConfig)
    with pytest.raises(ConfigError, match=r"data.val_fraction: .*less than 0.5"):
        parse_config({"data": {"val_fraction": 0.7}}, DistillResponseConfig)
