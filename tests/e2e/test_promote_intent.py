"""End to end: distill_intent (smoke) once, then promote_intent, monitor_intent and rollback_intent through the
real CLI in throwaway ZenML and MLflow stores, checking the registry after each step.

a failing gate -> exit 5, nothing moved (the teacher bootstrapped into production); the smoke gates -> the
student through staging, shadow and rollout into production, the teacher archived as last-known-good; a
rollback trigger on a labelled traffic log -> production back to the teacher, exit 6; a manual rollback
to a named version; an empty traffic log -> one-line error, exit 3.
"""

import json
import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mangadistill.data.synthetic import generate_intent_dataset
from mangadistill.config import read_layered
from mangadistill.lifecycle import stages
from mangadistill.lifecycle.record import read_record
from tests.e2e._cli import run_cli

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = PROJECT_ROOT / "configs"
MODEL = "mangaassist-intent"


_run = run_cli


def _out(result) -> str:
    return result.stdout[-4000:] + result.stderr[-4000:]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("promote-e2e")
    env = {**os.environ, "ZENML_CONFIG_PATH": str(root / "zenml"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "ZENML_ANALYTICS_OPT_IN": "false"}
    result = _run(env, root, "--pipeline", "distill_intent", "--config", str(CONFIGS / "distill_intent_smoke.yaml"))
    assert result.returncode == 0, _out(result)
    return root, env, MlflowClient(env["MLFLOW_TRACKING_URI"])


def _config(root: Path, name: str, base: str, **changes) -> Path:
    config, _ = read_layered(CONFIGS / base)  # `extends:` merged: the copy lives in another folder
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = root / name
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_life_cycle_through_the_cli(world):
    root, env, client = world
    student = "1"

    # a gate the tiny smoke student cannot pass: exit 5, gate named, the student stays where it was
    strict = _config(root, "strict.yaml", "promote_intent_smoke.yaml",
                     **{"offline_gates.accuracy": {"category": "quality", "metric": "accuracy", "min": 0.89}})
    failed = _run(env, root, "--pipeline", "promote_intent", "--config", str(strict))
    assert failed.returncode == 5, _out(failed)
    assert "offline gates: FAIL" in failed.stdout and "accuracy:" in failed.stdout
    assert "stays where it was" in failed.stdout
    teacher = stages.version_in_stage(client, MODEL, stages.PRODUCTION)  # bootstrapped before the gates ran
    assert teacher != student and client.get_model_version(MODEL, teacher).tags["role"] == "teacher"
    assert read_record(client, MODEL, teacher).benchmark["accuracy"] > 0  # the teacher's approved benchmark
    record = read_record(client, MODEL, student)
    assert record.gates["offline"].decision == "fail" and record.gates["offline"].results["accuracy"].endswith("FAIL")
    assert stages.version_in_stage(client, MODEL, stages.STAGING) is None and record.stage == "none"

    # the smoke gates: staging -> shadow -> rollout -> production; the teacher archived as last-known-good
    promoted = _run(env, root, "--pipeline", "promote_intent", "--config", str(CONFIGS / "promote_intent_smoke.yaml"))
    assert promoted.returncode == 0, _out(promoted)
    assert "online_shadow_compare" in promoted.stdout and "PROMOTED" in promoted.stdout
    assert stages.aliases(client, MODEL) == {"production": student, "last-known-good": teacher}
    record = read_record(client, MODEL, student)
    assert record.has_passing_gate_record and record.rollout.share == 1.0
    assert record.provenance.pipeline_run and record.served_variant.startswith("onnx")
    tags = client.get_model_version(MODEL, student).tags  # what a person sees in the UI's versions table
    assert set(tags) <= {"family", "role", "stage", "gates", "rollout", "served_variant", "flag", "record"}
    assert tags["gates"] == "offline pass, shadow pass" and tags["rollout"] == "100%"
    assert client.get_model_version(MODEL, student).current_stage == "Production"
    assert client.get_model_version(MODEL, teacher).tags["stage"] == "archived"

    # a labelled traffic log on which production's accuracy collapses: the trigger fires, production rolls back
    surge = generate_intent_dataset(60, 99)
    surge[surge["label"] != "escalation"].assign(label="escalation").to_csv(root / "surge.csv", index=False)
    monitor = _config(root, "monitor.yaml", "monitor_intent_smoke.yaml", action="rollback",
                      traffic={"source": "csv", "path": "surge.csv"},
                      triggers={"accuracy": {"benchmark": "accuracy", "max_drop_points": 5.0}})
    fired = _run(env, root, "--pipeline", "monitor_intent", "--config", str(monitor))
    assert fired.returncode == 6, _out(fired)
    assert "FIRED" in fired.stdout and "ROLLED BACK" in fired.stdout
    assert stages.version_in_stage(client, MODEL, stages.PRODUCTION) == teacher
    bad, restored = read_record(client, MODEL, student), read_record(client, MODEL, teacher)
    assert bad.stage == "rolled_back" and "accuracy" in bad.rollbacks[-1].reason
    assert restored.rollbacks[-1].reason == bad.rollbacks[-1].reason

    # a person restores the student by hand
    manual = _run(env, root, "--pipeline", "rollback_intent", "--version", student)
    assert manual.returncode == 0, _out(manual)
    assert stages.version_in_stage(client, MODEL, stages.PRODUCTION) == student
    assert read_record(client, MODEL, student).rollbacks[-1].reason == "manual rollback"


def test_empty_traffic_log_is_a_one_line_data_error(world):
    root, env, _ = world
    (root / "empty.csv").write_text("")
    config = _config(root, "empty.yaml", "monitor_intent_smoke.yaml", traffic={"source": "csv", "path": "empty.csv"})
    result = _run(env, root, "--pipeline", "monitor_intent", "--config", str(config), timeout=120)
    assert result.returncode == 3 and "empty.csv" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_version_flag_only_where_it_applies(world):
    root, env, _ = world
    result = _run(env, root, "--pipeline", "monitor_intent", "--version", "1", timeout=120)
    assert result.returncode == 2 and "--version applies to" in result.stderr
