"""A family defined only in the tests (`tests/families/length_family.py`) travels the whole life cycle
through the generic pipelines on a real SQLite MLflow registry: bootstrap -> offline gates (its own
metric) -> staging -> shadow (its own comparison) -> staged rollout -> production -> a newer version
-> monitoring (its own trigger fires) -> rollback -> manual rollback through the CLI (`--model`).

No life-cycle module knows this family; it registers itself when its module is imported.
"""

import os
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.config import MonitorConfig, PromoteConfig, RollbackConfig, parse_config
from mangadistill.lifecycle import stages
from mangadistill.lifecycle.record import read_record
from mangadistill.traffic import simulate_traffic
from tests.e2e._cli import PROJECT_ROOT
from tests.families.length_family import MODEL_NAME, exact_match, register_length_model

pytestmark = pytest.mark.e2e

TRAFFIC = {"source": "simulator", "simulator": {"n_rows": 40, "seed": 11}}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from pipelines.stack import ensure_stack

    uri = ensure_stack().tracking_uri  # the sandbox ZenML store (tests/conftest.py) with the project's MLflow tracker
    _use_store(uri)
    mlflow.set_experiment("length-family-test")
    texts = simulate_traffic(200, seed=3)["text"].tolist()  # the data each version's benchmark is measured on
    return MlflowClient(uri), tmp_path_factory.mktemp("length"), texts


def _use_store(uri: str) -> None:
    """Point this process at the test store again (ZenML's MLflow tracker unsets the variable after a run)."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)


def _run(module, pipeline, config, uri: str):
    run = pipeline(config=config)
    _use_store(uri)
    return module.run_outputs(run), module.exit_code(run)


def _promote(version: str, uri: str):
    from pipelines import promote

    config = parse_config({"family": "length", "candidate_version": int(version), "rollout": {"steps_per_run": None},
                           "shadow": {"traffic": TRAFFIC, "latency_warmup": 1}}, PromoteConfig)
    return _run(promote, promote.promote, config, uri)


def test_a_new_family_goes_through_promote_monitor_and_rollback(registry):
    client, folder, texts = registry
    uri = client.tracking_uri
    v1 = register_length_model(MODEL_NAME, 22, folder, exact_match=exact_match(22, texts), long_rate=0.6)

    # promote: nothing in production -> the family's bootstrap model; v1 passes its own gate and is promoted
    outputs, code = _promote(v1, uri)
    assert code == 0, outputs
    baseline = outputs["production_before"]["version"]
    assert outputs["production_before"]["bootstrapped"] and baseline != v1
    assert {g["name"] for g in outputs["offline_gates"]["gates"]} == {"exact_match", "rollback_target", "observability"}
    assert outputs["offline_gates"]["passed"] and outputs["shadow_report"]["passed"]
    assert "label_agreement" in outputs["shadow_report"]["metrics"]
    assert outputs["shadow_report"]["event"]["family"] == "length"
    assert outputs["promotion"]["promoted"] and outputs["promotion"]["rollout"] == "100%"
    assert stages.aliases(client, MODEL_NAME) == {"production": v1, "last-known-good": baseline}
    record = read_record(client, MODEL_NAME, v1)
    assert record.family == "length" and record.has_passing_gate_record and record.stage == "production"
    assert record.gates["offline"].results["exact_match"].endswith("PASS")

    # a version that fails the family's own gate stays where it is; exit code 5
    bad = register_length_model(MODEL_NAME, 80, folder, exact_match=exact_match(80, texts), long_rate=0.05)
    outputs, code = _promote(bad, uri)
    assert code == 5 and "exact_match" in outputs["offline_gates"]["reason"]
    assert read_record(client, MODEL_NAME, bad).stage == "none"

    # a newer version whose approved long-label rate is far below what it does on traffic
    v3 = register_length_model(MODEL_NAME, 20, folder, exact_match=exact_match(20, texts), long_rate=0.2)
    outputs, code = _promote(v3, uri)
    assert code == 0 and outputs["promotion"]["promoted"]
    assert stages.aliases(client, MODEL_NAME) == {"production": v3, "last-known-good": v1}

    # monitor: the family's trigger (long_rate rise > 50 %) fires -> production back to last-known-good
    from pipelines import monitor

    config = parse_config({"family": "length", "traffic": TRAFFIC, "latency_queries": 10, "latency_warmup": 1,
                           "drift": {"enabled": False}}, MonitorConfig)
    outputs, code = _run(monitor, monitor.monitor, config, uri)
    report = outputs["trigger_report"]
    assert code == monitor.TRIGGER_FIRED
    assert [t["status"] for t in report["triggers"]] == ["fired"] and report["observed"]["long_rate"] > 0.3
    assert stages.version_in_stage(client, MODEL_NAME, stages.PRODUCTION) == v1
    assert read_record(client, MODEL_NAME, v3).stage == "rolled_back"

    # a manual rollback through the CLI, the family found by its registered model (--model)
    env = {**os.environ, "MANGADISTILL_FAMILIES": "tests.families.length_family"}
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), "--pipeline", "rollback", "--model",
                             MODEL_NAME], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ROLLED BACK" in result.stdout
    assert stages.version_in_stage(client, MODEL_NAME, stages.PRODUCTION) == baseline
    assert read_record(client, MODEL_NAME, v1).rollbacks[-1].role == "replaced"
    assert parse_config({"family": "length"}, RollbackConfig).registered_model == MODEL_NAME
