"""`extends:` layering: every shipped config validates, the distill configs resolve as they did before the Stage 2
keys moved (snapshots), the default YAML equals the models' defaults, and the merge rules themselves."""

import copy
import json
from pathlib import Path

import pytest

from mangadistill.config import (
    AugmentConfig,
    DistillIntentConfig,
    OpenAIServerConfig,
    TeacherStopConfig,
    load_config,
    merge_layers,
    parse_config,
    read_layered,
)
from mangadistill.errors import ConfigError
from pipelines import PIPELINES

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
SNAPSHOTS = ROOT / "tests" / "fixtures" / "config_snapshots"


def _pipeline_of(config_file: Path) -> str:
    """`<pipeline>*.yaml` belongs to `<pipeline>` (the longest pipeline name that prefixes the file's stem)."""
    names = [name for name in PIPELINES if config_file.stem.startswith(name)]
    assert names, f"{config_file.name}: no pipeline in pipelines.PIPELINES matches its name"
    return max(names, key=len)


@pytest.mark.parametrize("config_file", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates_after_merging(config_file):
    if config_file.stem.startswith("serve_openai"):  # the fine-tuning server's config, not a pipeline's
        load_config(config_file, OpenAIServerConfig)
        return
    load_config(config_file, PIPELINES[_pipeline_of(config_file)].config_model)


def test_default_yaml_is_the_models_defaults():
    """configs/distill_intent.yaml documents the defaults; it must not set anything the models do not."""
    assert load_config(CONFIGS / "distill_intent.yaml", DistillIntentConfig) == DistillIntentConfig()


def migrate_stage2_keys(old: dict) -> dict:
    """The one migration of the old layout: `kd` -> `student.stage2.kd`, `student.training` ->
    `student.stage2.training`. Nothing else may differ from the snapshot."""
    new = copy.deepcopy(old)
    student = new["student"]
    student["stage2"] = {**student["stage2"], "kd": new.pop("kd"), "training": student.pop("training")}
    return new


@pytest.mark.parametrize("name", ["distill_intent", "distill_intent_smoke", "distill_intent_clinc150",
                                  "distill_intent_clinc150_imbalanced"])
def test_distill_configs_resolve_as_before_the_key_move(name):
    """Snapshots were taken from the old code (one module, no `extends:`); the layered files resolve the same."""
    old = json.loads((SNAPSHOTS / f"{name}.json").read_text(encoding="utf-8"))
    assert "kd" in old and "training" in old["student"]  # the snapshot is of the old layout
    resolved = load_config(CONFIGS / f"{name}.yaml", DistillIntentConfig).model_dump(mode="json")
    # added since the snapshots: the teacher's stop rule (its defaults in every shipped config) and augmentation
    assert resolved["teacher"].pop("stop") == TeacherStopConfig().model_dump(mode="json")
    augment = {"distill_intent_smoke": {"copies": 0.5}}.get(name, {})  # the smoke run exercises it
    assert resolved.pop("augment") == AugmentConfig(**augment).model_dump(mode="json")
    assert resolved == migrate_stage2_keys(old)


def test_variants_state_only_what_differs():
    smoke, _ = read_layered(CONFIGS / "distill_intent_smoke.yaml")
    assert smoke["student"]["stage2"]["kd"] == {"temperature": 4.0, "alpha": 0.7}  # inherited, not repeated
    assert "kd" not in (CONFIGS / "distill_intent_smoke.yaml").read_text(encoding="utf-8")
    imbalanced = [line for line in (CONFIGS / "distill_intent_clinc150_imbalanced.yaml").read_text().splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
    assert imbalanced == ["extends: distill_intent_clinc150.yaml", "data:",
                          "  path: ../../shared/datasets/clinc150/data_imbalanced.json", "registry:",
                          "  model_name: mangaassist-intent-clinc150-imbalanced"]


# ------------------------------------------------------------------------------------------ merge rules
def test_mappings_merge_key_by_key_and_inputs_are_not_changed():
    base = {"student": {"stage2": {"training": {"epochs": 8, "batch_size": 32}}, "init": "teacher_layers"}}
    override = {"student": {"stage2": {"training": {"epochs": 2}}}}
    merged = merge_layers(base, override)
    assert merged == {"student": {"stage2": {"training": {"epochs": 2, "batch_size": 32}}, "init": "teacher_layers"}}
    assert base["student"]["stage2"]["training"]["epochs"] == 8 and override == {"student": {"stage2": {"training": {"epochs": 2}}}}


def test_lists_and_scalars_replace():
    merged = merge_layers({"teacher_layers": [0, 2, 4], "tag": "a"}, {"teacher_layers": [0, 5], "tag": "b"})
    assert merged == {"teacher_layers": [0, 5], "tag": "b"}  # not [0, 5, 4] or [0, 2, 4, 0, 5]


def test_null_overrides_a_value_and_a_mapping():
    merged = merge_layers({"vocab_size": 8192, "evaluation": {"num_threads": 1}, "cost": {"memory_mb": 1024}},
                          {"vocab_size": None, "evaluation": {"num_threads": None}, "cost": None})
    assert merged == {"vocab_size": None, "evaluation": {"num_threads": None}, "cost": None}


def test_a_mapping_replaces_a_scalar_and_back():
    assert merge_layers({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert merge_layers({"a": {"b": 2}}, {"a": 3}) == {"a": 3}


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_chain_of_two_bases(tmp_path):
    _write(tmp_path, "grand.yaml", "student:\n  vocab_size: 4096\n  teacher_layers: [0, 1]\nregistry:\n  model_name: g\n")
    _write(tmp_path, "parent.yaml", "extends: grand.yaml\nstudent:\n  teacher_layers: [0, 5]\n")
    child = _write(tmp_path, "child.yaml", "extends: parent.yaml\nregistry:\n  model_name: c\n")
    raw, files = read_layered(child)
    assert raw == {"student": {"vocab_size": 4096, "teacher_layers": [0, 5]}, "registry": {"model_name": "c"}}
    assert [f.name for f in files] == ["child.yaml", "parent.yaml", "grand.yaml"]  # child first
    config = load_config(child, DistillIntentConfig)
    assert (config.student.vocab_size, config.student.teacher_layers, config.registry.model_name) == (4096, (0, 5), "c")


def test_a_loop_is_one_line_naming_the_files(tmp_path):
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "a.yaml", DistillIntentConfig)
    message = str(info.value)
    assert "\n" not in message and "loops back" in message
    assert str(tmp_path / "a.yaml") in message and str(tmp_path / "b.yaml") in message


def test_a_missing_base_is_one_line_naming_it(tmp_path):
    child = _write(tmp_path, "child.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(child, DistillIntentConfig)
    message = str(info.value)
    assert "\n" not in message and "base file not found" in message
    assert str(tmp_path / "nowhere.yaml") in message and message.startswith(str(child))


def test_extends_must_name_a_file(tmp_path):
    child = _write(tmp_path, "child.yaml", "extends: [a.yaml, b.yaml]\n")
    with pytest.raises(ConfigError, match="extends: expected the path of the base YAML file"):
        load_config(child, DistillIntentConfig)


def test_a_validation_error_names_the_file_and_its_base(tmp_path):
    _write(tmp_path, "base.yaml", "student:\n  stage2:\n    training:\n      epochs: 2\n")
    child = _write(tmp_path, "child.yaml", "extends: base.yaml\nstudent:\n  stage2:\n    training:\n      epochs: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(child, DistillIntentConfig)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{child} (extends {tmp_path / 'base.yaml'}): student.stage2.training.epochs:")
    assert "got 0" in message


def test_an_old_key_in_a_layered_file_fails_with_its_new_place(tmp_path):
    child = _write(tmp_path, "child.yaml", f"extends: {CONFIGS / 'distill_intent.yaml'}\nkd:\n  alpha: 0.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(child, DistillIntentConfig)
    assert str(info.value).endswith("unknown key 'kd' (moved to 'student.stage2.kd')")


def test_a_partial_block_keeps_the_fields_own_defaults():
    """`student.stage2.training: {epochs: 3}` keeps Stage 2's learning rate, not TrainingConfig's generic one."""
    from mangadistill.config import PromoteConfig, TrainingConfig

    config = parse_config({"student": {"stage2": {"training": {"epochs": 3}}}}, DistillIntentConfig)
    stage2 = DistillIntentConfig().student.stage2.training
    assert config.student.stage2.training == stage2.model_copy(update={"epochs": 3})
    assert stage2.learning_rate != TrainingConfig().learning_rate  # the case that used to go wrong
    promote = parse_config({"shadow": {"traffic": {"simulator": {"n_rows": 50}}}}, PromoteConfig)
    assert promote.shadow.traffic.simulator.seed == PromoteConfig().shadow.traffic.simulator.seed == 2027
