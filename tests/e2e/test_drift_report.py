"""End to end: `run.py --pipeline drift_report` on the smoke config, against the smoke distill_intent run.

The real CLI in a subprocess with the session's throwaway stores (conftest.py); then the real SQLite MLflow
store (report artifact, metrics, tags), the ZenML artifact's HTML visualization, and a headless Chromium
screenshot of the report.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.e2e._cli import PROJECT_ROOT
from tests.e2e._cli import run_cli as _run

pytestmark = pytest.mark.e2e

DRIFT_SMOKE = PROJECT_ROOT / "configs" / "drift_report_smoke.yaml"
REPORT = "drift/drift_report.html"


@pytest.fixture(scope="module")
def drift_run(stores, first_run):
    root, env = stores
    result = _run(env, root, "--pipeline", "drift_report", "--config", str(DRIFT_SMOKE))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def mlflow_run(stores, drift_run):
    _, env = stores
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("drift_report").experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.fixture(scope="module")
def report_file(stores, mlflow_run, tmp_path_factory):
    _, env = stores
    _, run = mlflow_run
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=REPORT,
                                                    dst_path=str(tmp_path_factory.mktemp("report")))
    finally:
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return Path(local)


def test_summary_names_the_drift_the_recommendation_and_the_report(drift_run):
    out = drift_run.stdout
    for step in ("load_reference_data", "load_traffic_log", "predict_intents", "describe_queries", "report_drift",
                 "recommend_retraining"):
        assert step in out
    assert "Drift:" in out and "train queries" in out and "oov_rate" in out and "predicted_intent" in out
    assert "Evidently tests:" in out and "production model models:/mangaassist-intent/1" in out
    assert "retrain: " in out  # the smoke log is fully drifted (traffic.simulator.drift = 1.0)
    report_lines = [line for line in out.splitlines() if line.startswith("report: ")]
    assert len(report_lines) == 1 and report_lines[0].endswith("drift_report.html")  # one unbroken line


def test_report_metrics_and_recommendation_are_in_the_mlflow_run(mlflow_run, stores):
    client, run = mlflow_run
    root, _ = stores
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "drift")}
    assert {REPORT, "drift/drift_summary.json", "drift/evidently_results.json",
            "drift/retraining_recommendation.json"} <= artifacts
    assert run.info.artifact_uri.startswith((root / "artifacts" / "drift_report").as_uri())  # beside the store
    metrics = run.data.metrics
    assert 0.0 <= metrics["drift_share"] <= 1.0 and metrics["monitored_columns"] >= 8
    assert metrics["tests_passed"] + metrics["tests_failed"] > 8 and "drift_score_text" in metrics
    assert metrics["drift_detected_oov_rate"] == 1.0 and "drift_detected_confidence" in metrics
    assert metrics["dataset_drift"] == 1.0 and run.data.tags["retrain_recommended"] == "true"
    assert run.data.tags["retrain_reason"].startswith("retrain: ")
    assert run.data.params["production_model.uri"] == "models:/mangaassist-intent/1"
    assert {"traffic_rows", "traffic_duplicates_dropped", "traffic_quarantined", "traffic_rows_with_pii",
            "current_accuracy", "reference_accuracy"} <= metrics.keys()
    assert metrics["traffic_quarantined"] == 0.0 and metrics["traffic_rows_in"] == 300.0  # simulator: no bad lines


def test_report_is_a_zenml_artifact_with_an_html_visualization(stores, drift_run):
    _, env = stores
    code = ("import json\nfrom zenml.client import Client\n"
            "artifact = Client().get_artifact_version('drift_report')\n"
            "print(json.dumps([str(v.type) for v in artifact.visualizations]))\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert any("html" in kind.lower() for kind in json.loads(result.stdout.strip().splitlines()[-1]))


def test_headless_chromium_renders_the_report(report_file, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    html = report_file.read_text(encoding="utf-8")
    assert len(html) > 500_000 and '<script src="http' not in html  # one file, JS bundle embedded: opens offline
    screenshot = tmp_path / "drift_report.png"
    result = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             f"--screenshot={screenshot}", "--window-size=1400,1000", report_file.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and screenshot.exists(), result.stderr[-2000:]
    from PIL import Image

    image = Image.open(screenshot).convert("L")
    assert image.size == (1400, 1000)
    histogram = image.histogram()
    non_white = 1.0 - sum(histogram[250:]) / (image.size[0] * image.size[1])
    assert non_white > 0.02, f"the screenshot is almost blank ({non_white:.1%} non-white pixels)"
    assert len([count for count in histogram if count]) > 50  # text, charts and borders, not a flat page


def test_malformed_log_stops_before_the_pipeline_with_one_line(stores, tmp_path):
    _, env = stores
    log = tmp_path / "today.csv"
    log.write_text("message,label\nwhere is my order,order_status\n")
    config = tmp_path / "drift.yaml"
    config.write_text("traffic:\n  source: csv\n  path: today.csv\n")
    result = _run(env, tmp_path, "--pipeline", "drift_report", "--config", str(config), timeout=300)
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "today.csv: missing column 'text' (found: message, label)" in result.stderr
    log.write_text("")
    result = _run(env, tmp_path, "--pipeline", "drift_report", "--config", str(config), timeout=300)
    assert result.returncode == 3 and "the traffic log is empty" in result.stderr
