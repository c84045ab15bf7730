"""End to end: `run.py --pipeline distill_intent` on the smoke config, twice, in throwaway stores.

Runs the real CLI in a subprocess (from a foreign working directory), then inspects the real SQLite
MLflow store: epoch metrics, events, figures, the registered version and its pyfunc in a fresh process.
The stores and the first run are session fixtures (conftest.py), shared with the drift_report tests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.config import DistillIntentConfig, load_config
from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.export.onnx import VARIANT_FILES
from mangadistill.lifecycle.record import read_record
from tests.e2e._cli import PROJECT_ROOT, SMOKE
from tests.e2e._cli import run_cli as _run

pytestmark = pytest.mark.e2e

MODEL = "mangaassist-intent"
EPOCH_METRICS = ("loss_total", "loss_hard", "loss_kd", "grad_norm", "lr", "samples_per_sec", "val_accuracy",
                 "rare_class_recall", "refusal_precision", "teacher_entropy_mean", "student_entropy_mean")


@pytest.fixture(scope="module")
def client(stores, first_run):
    _, env = stores
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    yield MlflowClient(env["MLFLOW_TRACKING_URI"])
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])


def test_summary_table_is_printed(first_run):
    out = first_run.stdout
    assert "teacher vs served student" in out and "Accuracy" in out and "Warm latency p95" in out
    assert "Cost per 1M requests" in out and "Serving variants" in out
    for variant in ("teacher_pytorch_fp32", "student_pytorch_fp32", "student_onnx_fp32", "student_onnx_int8_dynamic",
                    "student_onnx_int8_static"):
        assert variant in out, variant
    assert "keeps" in out and "of the teacher's gate accuracy" in out
    assert f"models:/{MODEL}/1" in out
    assert "augmentation: " in out and "augmented queries (" in out  # the smoke config augments


_AUGMENTATION_FACTS = """
import json
from zenml.client import Client

run = Client().get_pipeline("distill_intent").runs[0]  # a cached re-run shares the first run's artifacts
augmented = run.steps["augment_intent_data"].outputs["augmented_queries"][0].load()
labels = run.steps["label_with_teacher"].outputs["teacher_labels"][0].load()
train = run.steps["clean_intent_data"].outputs["intent_dataset"][0].load().train
print(json.dumps({"augmented": augmented["text"].tolist(), "transformations": sorted(set(augmented["transformation"])),
                  "labelled": list(labels.augmented_texts), "logits_rows": len(labels.splits["augmented"].logits),
                  "train_rows": len(train)}))
"""


def test_augmented_queries_are_versioned_labelled_and_trained_on(stores, first_run, client, tmp_path):
    _, env = stores
    script = tmp_path / "augmentation_facts.py"  # a file, not -c: ZenML resolves materializers from a source root
    script.write_text(_AUGMENTATION_FACTS, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    augmented = facts["augmented"]
    config = load_config(SMOKE, DistillIntentConfig)
    assert 0 < len(augmented) <= round(config.augment.copies * facts["train_rows"])
    assert len(facts["transformations"]) > 1
    assert facts["labelled"] == augmented and facts["logits_rows"] == len(augmented)
    runs = client.search_runs([client.get_experiment_by_name("distill_intent").experiment_id])
    trained = next(r for r in runs if "augment/rows" in r.data.metrics)  # a cached re-run logs no step metrics
    assert trained.data.metrics["augment/rows"] == len(augmented)
    assert trained.data.metrics["teacher_labels/augmented_rows"] == len(augmented)
    # every epoch of both stages trained on the labelled rows and the augmented ones
    for name in ("train_samples", "stage1/train_samples"):
        history = client.get_metric_history(trained.info.run_id, name)
        assert history and {m.value for m in history} == {facts["train_rows"] + len(augmented)}, name


def test_epoch_metrics_are_logged_per_epoch(client):
    config = load_config(SMOKE, DistillIntentConfig)
    run = client.search_runs([client.get_experiment_by_name("distill_intent").experiment_id])[0]
    for name in EPOCH_METRICS:
        history = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == list(range(1, config.student.stage2.training.epochs + 1)), name
    teacher_history = client.get_metric_history(run.info.run_id, "teacher/val_accuracy")
    assert [m.step for m in teacher_history] == list(range(1, config.teacher.training.epochs + 1))
    assert run.data.params["student.stage2.kd.temperature"] == "4.0"
    assert run.data.params["student.stage2.kd.alpha"] == "0.7"
    for key in ("gate/teacher_accuracy", "gate/student_accuracy", "gate/student_retention",
                "gate/student_onnx_int8_dynamic_accuracy", "gate/student_onnx_int8_static_accuracy_delta_points",
                "serving/teacher_pytorch_fp32_latency_p95_ms", "serving/student_onnx_int8_dynamic_latency_p99_ms",
                "serving/student_onnx_int8_static_throughput_qps", "serving/student_onnx_int8_dynamic_cold_start_ms",
                "serving/student_onnx_fp32_cost_per_million_usd", "serving/p95_ratio", "serving/size_ratio",
                "serving/cost_reduction", "serving/int8_accuracy_delta", "serving/threads", "data/quarantined",
                "data/gate", "teacher_labels/rows_processed", "teacher_labels/teacher_entropy_mean",
                "stage1/epochs_run", "stage2/epochs_run", "stage2/train_seconds", "student/best_epoch",
                "student/train_seconds"):
        assert key in run.data.metrics, key
    # every run metric is grouped ("<group>/<name>") except Stage 2's runbook 11.2 epoch metrics
    ungrouped = {key for key in run.data.metrics if "/" not in key} - set(EPOCH_METRICS)
    assert not {key for key in ungrouped if key.startswith(("gate_", "serving_", "data_", "teacher_", "stage1_",
                                                              "stage2_", "student_best", "student_train"))}, ungrouped
    assert run.data.tags["served_variant"] in {"onnx_fp32", "onnx_int8_dynamic", "onnx_int8_static"}


def test_epoch_events_and_figures_are_artifacts(client):
    run = client.search_runs([client.get_experiment_by_name("distill_intent").experiment_id])[0]
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id))
    events = [json.loads(line) for line in (local / "events" / "distill_epoch_end.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events] == [1, 2]
    assert {e["event"] for e in events} == {"distill_epoch_end"} and events[0]["stage"] == "output_kd"
    for key in ("loss_total", "loss_ce", "loss_kd", "val_accuracy", "rare_class_recall", "refusal_precision",
                "throughput_seq_per_sec", "gpu_mem_gb"):
        assert key in events[0]
    assert (local / "evaluation" / "confusion_student.png").stat().st_size > 1000
    assert (local / "evaluation" / "confusion_teacher.png").stat().st_size > 1000
    assert (local / "config" / "resolved_config.yaml").exists()
    assert (local / "serving" / "latency.png").stat().st_size > 1000
    assert "student_onnx_int8_static" in (local / "serving" / "variants.md").read_text()
    assert "Cost per 1M requests" in (local / "serving" / "teacher_vs_served_student.md").read_text()
    report = json.loads((local / "serving" / "serving_report.json").read_text())
    assert report["p95_ratio"] > 0 and report["size_ratio"] > 0 and report["served_reason"]
    assert run.data.metrics["serving/p95_ratio"] == pytest.approx(report["p95_ratio"])
    export = json.loads((local / "export" / "export_report.json").read_text())
    assert set(export["variants"]) == {"onnx_fp32", "onnx_int8_dynamic", "onnx_int8_static"}
    assert json.loads((local / "events" / "teacher_label_generation.json").read_text())["rows_processed"] > 0


def test_registered_version_serves_int8_onnx_without_torch(stores, client):
    _, env = stores
    version = client.get_model_version(MODEL, "1")
    record = read_record(client, MODEL, "1")
    assert record.role == "student" and record.served_variant.startswith("onnx_") and record.family == "intent"
    assert version.tags["served_variant"] == record.served_variant  # a glance tag in the UI's versions table
    assert record.provenance.pipeline_run.startswith("distill_intent") and record.provenance.teacher
    for key in ("accuracy", "macro_f1", "refusal_precision", "refusal_recall"):
        assert 0.0 <= record.benchmark[key] <= 1.0, key
    assert record.benchmark["retention"] > 0.0  # student / teacher accuracy: above 1 when the student is better
    for key in ("latency_p95_ms", "size_mb", "cost_per_million_usd"):
        assert record.benchmark[key] > 0.0, key
    code = (
        "import json, sys\n"
        "import mlflow, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL}/1')\n"
        "a = m.predict(['where is my order MA-123456?', 'recommend me a dark fantasy manga'])\n"
        "b = m.predict(pd.DataFrame({'q': ['do you ship to canada?']}))\n"
        "print(json.dumps({'a': pd.DataFrame(a).to_dict('list'), 'b': pd.DataFrame(b).to_dict('list'),\n"
        "                  'torch': 'torch' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["torch"] is False  # the registered pyfunc serves with onnxruntime + tokenizers only
    assert len(payload["a"]["intent"]) == 2 and len(payload["b"]["intent"]) == 1
    assert set(payload["a"]["intent"] + payload["b"]["intent"]) <= set(MANGA_INTENTS)
    assert all(0.0 < c <= 1.0 for c in payload["a"]["confidence"] + payload["b"]["confidence"])
    files = {p.name for p in Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1")).rglob("*")}
    assert [name for name in files if name.endswith(".onnx")] == [VARIANT_FILES[version.tags["served_variant"]]]
    assert not [name for name in files if name.endswith((".safetensors", ".bin"))]


def test_second_run_reuses_cached_data_and_teacher_labels(stores, first_run):
    root, env = stores
    result = _run(env, root, "--pipeline", "distill_intent", "--config", str(SMOKE))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[1]: line.split()[3] for line in result.stdout.splitlines()
            if line.startswith("│") and len(line.split()) >= 4 and line.split()[3] in {"cached", "completed"}}
    for step in ("load_intent_data", "clean_intent_data", "train_teacher", "label_with_teacher"):
        assert rows.get(step) == "cached", (step, rows)
    assert rows.get("register_student") == "completed"
    assert "reused" in result.stdout and f"models:/{MODEL}/1" in result.stdout  # same weights, same version


def test_bad_config_exits_nonzero_with_one_line(stores, tmp_path):
    _, env = stores
    bad = tmp_path / "bad.yaml"
    bad.write_text("student:\n  stage2:\n    training:\n      epochs: -1\n")
    result = _run(env, tmp_path, "--pipeline", "distill_intent", "--config", str(bad), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "student.stage2.training.epochs" in result.stderr


def test_missing_data_file_and_unloadable_model_fail_fast(stores, tmp_path):
    _, env = stores
    missing = tmp_path / "missing.yaml"
    missing.write_text("data:\n  source: csv\n  path: nowhere.csv\n")
    result = _run(env, tmp_path, "--pipeline", "distill_intent", "--config", str(missing), timeout=120)
    assert result.returncode == 3 and "nowhere.csv" in result.stderr and "Traceback" not in result.stderr
    model = tmp_path / "model.yaml"
    model.write_text(f"teacher:\n  model: {tmp_path / 'no-such-model'}\n")
    result = _run(env, tmp_path, "--pipeline", "distill_intent", "--config", str(model), timeout=120)
    assert result.returncode == 4 and "teacher.model" in result.stderr and "Traceback" not in result.stderr


def test_mlflow_ui_serves_the_run_and_the_registered_model(stores, first_run):
    _, env = stores
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "run.py"), "--mlflow-ui", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/get?name={MODEL}", timeout=5) as r:
                    model = json.load(r)["registered_model"]
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        assert model["latest_versions"][0]["version"] == "1"
        with urllib.request.urlopen(f"{base}/", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read(2000).lower()
        query = json.dumps({"experiment_ids": [], "max_results": 5, "filter": "name = 'distill_intent'"}).encode()
        experiments = json.load(urllib.request.urlopen(
            urllib.request.Request(f"{base}/api/2.0/mlflow/experiments/search", data=query,
                                   headers={"Content-Type": "application/json"}), timeout=10))
        assert "distill_intent" in {e["name"] for e in experiments["experiments"]}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_both_stages_are_logged_with_their_own_metrics_tables_and_reasons(first_run, client):
    config = load_config(SMOKE, DistillIntentConfig)
    run = client.search_runs([client.get_experiment_by_name("distill_intent").experiment_id],
                             order_by=["attribute.start_time ASC"])[0]  # the first run trained the student
    stage1 = {name: client.get_metric_history(run.info.run_id, f"stage1/{name}")
              for name in ("loss_feature", "loss_attention", "loss_probe", "probe_val_accuracy")}
    epochs = [m.step for m in stage1["loss_feature"]]
    assert epochs and epochs == list(range(1, len(epochs) + 1)) and len(epochs) <= config.student.stage1.training.epochs
    assert all([m.step for m in history] == epochs for history in stage1.values())
    assert run.data.tags["stage1_stop_reason"] and run.data.tags["stage2_stop_reason"]
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="student"))
    assert "| Epoch | Feature loss | Attention loss | Val acc (probe head) |" in (local / "stage1_epochs.md").read_text()
    assert "| Epoch | CE loss | KD loss | Total loss | Val acc |" in (local / "stage2_epochs.md").read_text()
    assert (local / "stage2_epochs.csv").read_text().startswith("Epoch,CE loss,KD loss")
    assert "deployment candidate" in (local / "stage2_epochs.md").read_text()
    assert (local / "stage1_stop.txt").read_text().startswith("stopped: ")
    assert (local / "stage1_curves.png").stat().st_size > 1000 and (local / "stage2_curves.png").stat().st_size > 1000
    assert "mse(hidden)" in (local / "stage1_loss.txt").read_text()
    events = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="events/stage1_epoch_end.jsonl"))
    first = json.loads(events.read_text().splitlines()[0])
    assert first["stage"] == "feature_kd" and first["loss_feature"] > 0 and "probe_val_accuracy" in first
    assert "stage 1: " in first_run.stdout and "stage 2: " in first_run.stdout
    assert "teacher: 1 epoch (epoch budget), kept epoch 1" in first_run.stdout  # smoke: one teacher epoch
