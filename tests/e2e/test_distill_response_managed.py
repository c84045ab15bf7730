"""End to end: the managed response workflow (`distill_response_managed`) against the project's own
OpenAI-compatible server (`run.py --serve openai`, a real process on loopback), through the official client.

One module-scoped sequence: a dry run (estimate, nothing uploaded); a run killed right after its first upload;
a re-run that finishes (no second file, no second job); then the registered version's pyfunc answers through
the server, and stops answering when the server is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e._cli import PROJECT_ROOT, run_cli
from tests.integration._finetune_server import ServerProcess

KEY = "e2e-managed-key"
CONFIGS = PROJECT_ROOT / "configs"


@pytest.fixture(scope="module")
def managed(tmp_path_factory):
    """Stores, the server process, the pipeline config, and an openai client of the server."""
    from openai import OpenAI

    root = tmp_path_factory.mktemp("managed")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "ZENML_CONFIG_PATH": str(root / "zenml"), "MLFLOW_TRACKING_URI": uri,
           "ZENML_ANALYTICS_OPT_IN": "false", "MANGADISTILL_API_KEY": KEY}
    server = ServerProcess(root / "serve.yaml", env, root / "server.log")
    port = server.port
    (root / "serve.yaml").write_text(f"extends: {CONFIGS / 'serve_openai_smoke.yaml'}\nroot: {root / 'server'}\n")
    (root / "managed.yaml").write_text(
        f"extends: {CONFIGS / 'distill_response_managed_smoke.yaml'}\n"
        f"teacher:\n  base_url: http://127.0.0.1:{port}/v1\n  cache_dir: {root / 'teacher-cache'}\n"
        f"managed:\n  base_url: http://127.0.0.1:{port}/v1\n  files_dir: {root / 'files'}\n")
    server.start(timeout=120)
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
    state = {"root": root, "env": env, "uri": uri, "server": server, "client": client,
             "config": str(root / "managed.yaml")}
    try:
        yield state
    finally:
        server.kill()


def _our_files(client) -> list:
    return [f for f in client.files.list(purpose="fine-tune") if f.filename.startswith("mangadistill-")]


@pytest.fixture(scope="module")
def dry_run(managed):
    return run_cli(managed["env"], managed["root"], "--pipeline", "distill_response_managed",
                   "--config", managed["config"], "--dry-run")


@pytest.fixture(scope="module")
def finished_run(managed, dry_run):
    """A run killed (SIGKILL) as soon as its first file is on the server, then a re-run to the end."""
    client = managed["client"]
    killed = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run.py"), "--pipeline", "distill_response_managed",
         "--config", managed["config"]], cwd=managed["root"], env=managed["env"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not _our_files(client):
            assert killed.poll() is None, "the run ended before it uploaded anything"
            assert time.monotonic() < deadline, "no upload within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(30)
    uploaded_before = len(_our_files(client))
    result = run_cli(managed["env"], managed["root"], "--pipeline", "distill_response_managed",
                     "--config", managed["config"])
    return {"result": result, "uploaded_before": uploaded_before}


def test_dry_run_estimates_and_uploads_nothing(managed, dry_run):
    assert dry_run.returncode == 0, dry_run.stdout[-3000:] + dry_run.stderr[-3000:]
    assert "total tokens / epoch:" in dry_run.stdout and "estimated training cost:" in dry_run.stdout
    assert "dry run: nothing was uploaded" in dry_run.stdout
    assert _our_files(managed["client"]) == []
    assert list(managed["client"].fine_tuning.jobs.list()) == []


def test_rerun_after_kill_reuses_the_upload_and_the_job(managed, finished_run):
    result = finished_run["result"]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    client = managed["client"]
    files = _our_files(client)
    assert finished_run["uploaded_before"] >= 1
    assert sorted(f.filename.rsplit("-", 1)[-1] for f in files) == ["train.jsonl", "validation.jsonl"]
    jobs = list(client.fine_tuning.jobs.list())
    assert len(jobs) == 1 and jobs[0].status == "succeeded"
    assert "reused: training_file" in result.stdout  # the killed run's upload was found, not repeated
    assert "Epoch checkpoints on the validation set" in result.stdout and "7.7 gates (gate set):" in result.stdout
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(jobs[0].id))
    assert len(checkpoints) == 2  # smoke config: 2 epochs, one checkpoint each


def test_registered_version_answers_through_the_server(managed, finished_run):
    import json
    from pathlib import Path

    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient

    assert finished_run["result"].returncode == 0
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(managed["uri"])
    try:
        versions = MlflowClient().search_model_versions("name='mangaassist-responder'")
        assert len(versions) == 1
        uri = f"models:/mangaassist-responder/{versions[0].version}"
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        spec = json.loads(next(local.rglob("endpoint.json")).read_text())
        job = next(iter(managed["client"].fine_tuning.jobs.list()))
        assert spec["model"].startswith(job.fine_tuned_model)  # the kept checkpoint (or the final model) of the job
        assert spec["fine_tuning_job_id"] == job.id
        model = mlflow.pyfunc.load_model(uri)
        os.environ["MANGADISTILL_API_KEY"] = KEY
        answers = model.predict(["How much is Berserk volume 1?"])
        assert answers[0]["answer"] and answers[0]["completion_tokens"] > 0
        managed["server"].kill()  # gone: the version has no weights of its own to fall back on
        from mangadistill.finetune.workflow import EndpointError

        with pytest.raises(EndpointError, match="did not answer for model 'ft:tiny-llama:smoke:"):
            model.predict(["How much is Berserk volume 1?"])
    finally:
        os.environ.pop("MANGADISTILL_API_KEY", None)
        mlflow.set_tracking_uri(previous)
