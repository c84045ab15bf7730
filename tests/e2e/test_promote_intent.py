"""End to end against a real MLflow tracking server (`mlflow server`, SQLite backend, on loopback, over HTTP):
distill_intent (smoke) once, then promote_intent, monitor_intent and rollback_intent through the real CLI
in a throwaway ZenML store, checking the registry after each step; then the server is stopped in the
middle of a promotion.

a failing gate -> exit 5, nothing moved (the teacher bootstrapped into production); the smoke gates -> the
student through staging, shadow and rollout into production, the teacher archived as last-known-good; a
rollback trigger on a labelled traffic log -> production back to the teacher, exit 6; a manual rollback
to a named version; an empty traffic log -> one-line error, exit 3; the registry going away mid-promotion
-> one-line error, exit 7, no alias moved on the failure, and the next run completes the promotion.
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
from tests.e2e._cli import free_port, run_cli, start_mlflow_server, stop_process_group

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
    port = free_port()
    server = {"process": start_mlflow_server(root, port)}
    uri = f"http://127.0.0.1:{port}"
    # a registry that is down should fail fast, not after MLflow's default 7 retries with backoff
    env = {**os.environ, "ZENML_CONFIG_PATH": str(root / "zenml"), "MLFLOW_TRACKING_URI": uri,
           "ZENML_ANALYTICS_OPT_IN": "false", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
           "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    saved = {key: os.environ.get(key) for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update({key: env[key] for key in saved})  # this process's client too
    try:
        result = _run(env, root, "--pipeline", "distill_intent", "--config", str(CONFIGS / "distill_intent_smoke.yaml"))
        assert result.returncode == 0, _out(result)
        yield root, env, MlflowClient(uri), server, port
    finally:
        stop_process_group(server["process"])
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


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
    root, env, client = world[:3]
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
    root, env = world[:2]
    (root / "empty.csv").write_text("")
    config = _config(root, "empty.yaml", "monitor_intent_smoke.yaml", traffic={"source": "csv", "path": "empty.csv"})
    result = _run(env, root, "--pipeline", "monitor_intent", "--config", str(config), timeout=120)
    assert result.returncode == 3 and "empty.csv" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_version_flag_only_where_it_applies(world):
    root, env = world[:2]
    result = _run(env, root, "--pipeline", "monitor_intent", "--version", "1", timeout=120)
    assert result.returncode == 2 and "--version applies to" in result.stderr


def test_registry_going_away_mid_promotion_stops_with_one_line_and_moves_nothing(world):
    """Promote the (rolled-back) teacher by name; stop the server when the shadow step starts."""
    import subprocess
    import sys

    root, env, client, server, port = world
    before = stages.aliases(client, MODEL)
    teacher = next(v for v in ("1", "2", "3") if read_record(client, MODEL, v).role == "teacher")
    command = [sys.executable, str(PROJECT_ROOT / "run.py"), "--pipeline", "promote_intent", "--config",
               str(CONFIGS / "promote_intent_smoke.yaml"), "--version", teacher]
    promotion = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    seen = []
    for line in promotion.stdout:  # stop the registry as soon as the candidate is staged and the shadow starts
        seen.append(line)
        if "evaluate_shadow" in line and "started" in line:
            stop_process_group(server["process"])
            break
    out, err = promotion.communicate(timeout=600)
    stdout = "".join(seen) + out
    assert promotion.returncode == 7, stdout[-3000:] + err[-3000:]
    assert err.strip().splitlines()[-1].startswith("error: model registry"), err[-2000:]

    server["process"] = start_mlflow_server(root, port)  # the registry is back
    after = stages.aliases(client, MODEL)
    assert after["production"] == before["production"]  # the failure decided nothing
    assert after.get("staging") == teacher  # what happened before the outage (offline gates passed) stays
    again = _run(env, root, *command[2:])
    assert again.returncode == 0, _out(again)
    assert stages.version_in_stage(client, MODEL, stages.PRODUCTION) == teacher
