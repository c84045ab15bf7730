"""Config validation: unknown keys and invalid values fail with one line that names the key."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mangadistill.config import DistillIntentConfig, load_config, parse_config, resolve_relative_paths
from mangadistill.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["distill_intent.yaml", "distill_intent_smoke.yaml", "distill_intent_clinc150.yaml",
                                  "distill_intent_clinc150_imbalanced.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(CONFIGS / name, DistillIntentConfig)
    assert config.student.stage2.kd.temperature == 4.0 and config.student.stage2.kd.alpha == 0.7
    assert config.student.stage1.enabled and config.student.stage2.enabled  # every shipped config runs both stages


def test_stage_switches_and_weights_are_validated():
    assert "enable at least one stage" in _error({"student": {"stage1": {"enabled": False}, "stage2": {"enabled": False}}})
    assert "feature_weight and attention_weight are both 0" in _error(
        {"student": {"stage1": {"feature_weight": 0, "attention_weight": 0}}})
    assert "model: required when init is 'pretrained'" in _error({"student": {"init": "pretrained"}})
    assert "student.stage1.stop.improvement_reference" in _error({"student": {"stage1": {"stop": {"improvement_reference": "best"}}}})
    only_stage2 = parse_config({"student": {"stage1": {"enabled": False, "feature_weight": 0, "attention_weight": 0}}},
                               DistillIntentConfig, source="cfg.yaml")
    assert not only_stage2.student.stage1.enabled and only_stage2.student.stage2.enabled


def test_defaults_follow_the_runbook():
    config = DistillIntentConfig()
    assert (config.student.stage2.kd.temperature, config.student.stage2.kd.alpha) == (4.0, 0.7)
    assert config.registry.model_name == "mangaassist-intent"


def test_old_stage2_keys_fail_and_say_where_they_moved():
    """No silent aliases: `kd:` and `student.training:` are unknown keys whose error names their new place."""
    message = _error({"kd": {"temperature": 2.0}})
    assert message == "cfg.yaml: unknown key 'kd' (moved to 'student.stage2.kd')"
    message = _error({"student": {"training": {"epochs": 3}}})
    assert message == "cfg.yaml: unknown key 'student.training' (moved to 'student.stage2.training')"
    assert "(+1 more)" in _error({"kd": {}, "student": {"training": {}}})
    assert "check the spelling" in _error({"student": {"stage2": {"trainig": {}}}})  # not a moved key


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, DistillIntentConfig, source="cfg.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_is_named():
    message = _error({"student": {"stage2": {"training": {"epochz": 3}}}})
    assert "student.stage2.training.epochz" in message and "unknown key" in message


def test_invalid_value_is_named_with_the_value():
    message = _error({"student": {"stage2": {"training": {"epochs": 0}}}})
    assert message.startswith("cfg.yaml: student.stage2.training.epochs:") and "got 0" in message


def test_wrong_type_is_named():
    assert "student.stage2.kd.temperature" in _error({"student": {"stage2": {"kd": {"temperature": "hot"}}}})


def test_alpha_out_of_range():
    assert "student.stage2.kd.alpha" in _error({"student": {"stage2": {"kd": {"alpha": 1.5}}}})


def test_invalid_choice_lists_allowed_values():
    message = _error({"data": {"source": "parquet"}})
    assert "data.source" in message and "synthetic" in message and "clinc150" in message


def test_file_source_requires_path():
    assert "path" in _error({"data": {"source": "csv"}})


def test_student_architecture_heads_must_divide_hidden():
    assert "hidden_size" in _error({"student": {"architecture": {"hidden_size": 100, "num_attention_heads": 12}}})


def test_yaml_exponent_without_dot_still_means_a_number():
    # PyYAML reads 5e-5 as the string "5e-5"; validation turns it into the float the user meant.
    raw = yaml.safe_load("teacher:\n  training:\n    learning_rate: 5e-5\n")
    assert raw["teacher"]["training"]["learning_rate"] == "5e-5"
    assert parse_config(raw, DistillIntentConfig).teacher.training.learning_rate == pytest.approx(5e-5)


def test_config_is_frozen():
    config = DistillIntentConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.student.stage2.kd.alpha = 0.1  # type: ignore[misc]


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", DistillIntentConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("student: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, DistillIntentConfig)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listed, DistillIntentConfig)


def test_relative_data_path_resolves_against_the_config_folder(tmp_path):
    config = parse_config({"data": {"source": "csv", "path": "rows.csv"}}, DistillIntentConfig)
    resolved = resolve_relative_paths(config, tmp_path)
    assert resolved.data.path == (tmp_path / "rows.csv").resolve()


def test_config_class_names_are_unique():
    """Two config classes with one name silently shadow each other (ZenML then rejects step inputs)."""
    import ast

    import mangadistill.config as config_module

    modules = sorted(Path(config_module.__file__).parent.glob("*.py"))
    names = [node.name for module in modules for node in ast.parse(module.read_text(encoding="utf-8")).body
             if isinstance(node, ast.ClassDef)]
    assert len(names) > 20  # every module of the package was read
    assert sorted({n for n in names if names.count(n) > 1}) == []
