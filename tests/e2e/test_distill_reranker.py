"""The reranker track end to end through the real CLI, on the smoke config (36 generated queries, one or two
epochs per model) in throwaway ZenML and MLflow stores:

distill_reranker -> per-epoch metrics, 9.4 epoch tables, events and the teacher / base / distilled table in
MLflow, a registered ONNX student -> promote --model mangaassist-reranker (the teacher bootstrapped into
production, the student through gates, shadow and rollout) -> run.py --serve reranker answering /v1/rerank and
/predict -> rollback through the CLI moves the alias and the server swaps to the teacher without a restart.
"""

import os
import signal
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.lifecycle import stages
from mangadistill.lifecycle.record import read_record
from tests.e2e._cli import free_port, run_cli, start_server, wait_for_health

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = PROJECT_ROOT / "configs"
MODEL = "mangaassist-reranker"


def _out(result) -> str:
    return result.stdout[-4000:] + result.stderr[-4000:]


@pytest.fixture(scope="module")
def distilled(stores):
    root, env = stores
    result = run_cli(env, root, "--pipeline", "distill_reranker", "--config", str(CONFIGS / "distill_reranker_smoke.yaml"))
    assert result.returncode == 0, _out(result)
    return root, env, result


def test_run_prints_teacher_vs_base_vs_distilled(distilled):
    out = distilled[2].stdout
    for text in ("Gate set", "first stage (BM25 order)", "teacher (PyTorch)", "base student, labels only",
                 "distilled student (PyTorch)", "served)", "NDCG@10", "MRR@10", "Top-3 swap", "p95 / call",
                 "Cost / 1M calls", "train_distilled_reranker: kept epoch", "run gates:", "registered models:/"):
        assert text in out, text


def test_mlflow_holds_epochs_events_tables_and_the_version(distilled):
    _, env, _ = distilled
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("distill_reranker")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    history = client.get_metric_history(run.info.run_id, "student/val_ndcg_at_10")
    assert sorted(m.step for m in history) in ([1], [1, 2])  # one value per epoch (the stop rule may end at 1)
    for name in ("student/loss_pairwise", "student/loss_mse", "base_student/val_ndcg_at_10", "teacher/val_ndcg_at_10",
                 "gate_distilled_student/ndcg_at_10", "serving_student_onnx_int8_dynamic/latency_p95_ms"):
        assert client.get_metric_history(run.info.run_id, name), name
    artifacts = {a.path for folder in ("tables", "events", "plots", "evaluation")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"tables/student_epochs.md", "tables/base_student_epochs.md", "tables/teacher_epochs.md",
            "tables/rerankers.md", "events/student_epoch_end.jsonl", "plots/student_epochs.png",
            "plots/rerank_latency.png", "evaluation/rerank_report.json"} <= artifacts
    table = Path(client.download_artifacts(run.info.run_id, "tables/student_epochs.md")).read_text()
    assert "| Epoch | Supervised loss | Pairwise loss | MSE score loss | NDCG@10 |" in table
    assert "best checkpoint (kept)" in table
    record = read_record(client, MODEL, "1")
    assert record.family == "reranker" and record.role == "student"
    assert {"ndcg_at_10", "ndcg_retention", "latency_p95_ms", "p95_ratio_vs_teacher", "size_mb"} <= set(record.benchmark)


def test_promote_serve_rerank_and_swap_on_rollback(distilled):
    root, env, _ = distilled
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    promoted = run_cli(env, root, "--pipeline", "promote", "--model", MODEL,
                       "--config", str(CONFIGS / "promote_reranker_smoke.yaml"))
    assert promoted.returncode == 0, _out(promoted)
    assert "top3_agreement" in promoted.stdout
    production = stages.version_in_stage(client, MODEL, stages.PRODUCTION)
    student = read_record(client, MODEL, production)
    assert student.role == "student" and student.rollout.share == 1.0
    teachers = [str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")
                if read_record(client, MODEL, v.version).role == "teacher"]
    assert len(teachers) == 1  # the candidate's teacher, bootstrapped

    port = free_port()
    server = start_server(env, "reranker", port)
    base = f"http://127.0.0.1:{port}"
    candidates = ["Berserk by Kentaro Miura (Dark Horse; dark fantasy, action, horror, seinen)",
                  "Chi's Sweet Home by Konami Kanata (Vertical; comedy, slice of life, kids)",
                  "Berserk Deluxe Edition by Kentaro Miura (Dark Horse; dark fantasy, action, seinen)"]
    try:
        wait_for_health(base, server, lambda body: body.get("model_version") == production)
        reply = httpx.post(f"{base}/v1/rerank", json={"query": "do you have berserk?", "candidates": candidates,
                                                      "top_n": 2}, timeout=30)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["model_version"] == production and len(body["scores"]) == 3
        assert sorted(body["order"]) == [0, 1, 2] and [r["index"] for r in body["results"]] == body["order"][:2]
        assert body["scores"][body["order"][0]] == max(body["scores"])
        ranked = httpx.post(f"{base}/predict", json={"text": "manga by Junji Ito"}, timeout=30).json()
        assert ranked["ranking"] and ranked["top_doc"] == ranked["ranking"][0]
        bad = httpx.post(f"{base}/v1/rerank", json={"query": "x", "candidates": []}, timeout=30)
        assert bad.status_code == 422 and "candidates" in bad.json()["error"]

        rolled = run_cli(env, root, "--pipeline", "rollback", "--model", MODEL)
        assert rolled.returncode == 0, _out(rolled)
        wait_for_health(base, server, lambda body: body.get("model_version") == teachers[0], timeout=60)
        after = httpx.post(f"{base}/v1/rerank", json={"query": "do you have berserk?", "candidates": candidates},
                           timeout=30).json()
        assert after["model_version"] == teachers[0]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
