"""A `distill_intent` run killed during student training resumes from its last epoch checkpoint when re-run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.e2e._cli import PROJECT_ROOT, SMOKE, run_cli

pytestmark = pytest.mark.e2e


def test_killed_run_resumes_and_ends_with_the_same_artifacts(tmp_path):
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "ZENML_ANALYTICS_OPT_IN": "false"}
    config = {"extends": str(SMOKE),  # the smoke run with 3 stage-2 epochs and checkpoints in tmp_path
              "student": {"stage2": {"training": {"epochs": 3}}, "checkpoints": {"dir": str(tmp_path / "checkpoints")}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "run.py"), "--pipeline", "distill_intent",
                                "--config", str(path)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "checkpoints").glob("student-*/stage2/epoch-0001")):
        assert process.poll() is None, "the run ended before its first stage-2 checkpoint"
        assert time.monotonic() < deadline, "no stage-2 checkpoint within 10 minutes"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    again = run_cli(env, tmp_path, "--pipeline", "distill_intent", "--config", str(path))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming stage2" in again.stdout + again.stderr
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("distill_intent").experiment_id],
                              order_by=["attribute.start_time DESC"])
    resumed = runs[0]
    assert resumed.data.tags["resumed_from_checkpoint"].startswith(str(tmp_path / "checkpoints"))
    history = client.get_metric_history(resumed.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3]  # the epochs before the kill are in the new run too
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        local = Path(mlflow.artifacts.download_artifacts(run_id=resumed.info.run_id, artifact_path="student"))
    finally:
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    assert {"stage1_epochs.md", "stage2_epochs.md", "training_curves.png"} <= {p.name for p in local.iterdir()}
    assert client.get_model_version("mangaassist-intent", "1").status == "READY"
    assert not list((tmp_path / "checkpoints").glob("student-*"))  # removed after success
