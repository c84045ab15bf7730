"""The model service under the registry's mistakes and moves, in a real uvicorn process on loopback over a real
SQLite MLflow registry (`run.py --serve intent --poll-seconds 1`, with `$MANGADISTILL_API_KEY` set):

- a version that FAILED its offline gate, given the `production` alias by hand, is served and flagged on
  /health from its own record, with no pipeline run;
- a version whose artifacts are broken is never swapped in: the old one keeps answering, /health says
  `degraded` and names the version, the failed swap is counted; moving the alias back recovers;
- moving the alias while 8 clients send requests loses none, and both versions answer;
- /predict needs the key; /health and /metrics do not.
"""

import json
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pytest
from mlflow.tracking import MlflowClient

from benchmarks.load_test_serving import Swap, query_texts, run_load, summarize
from mangadistill.families import get_family
from mangadistill.lifecycle import record as records
from mangadistill.lifecycle import service, stages
from tests.integration._tiny_models import register, throwaway_store, tiny_onnx_classifier
from tests.integration.test_serving_registry import NAME, free_port, metric, start_server, wait_healthy
from tests.unit.test_serving_app import assert_one_error

API_KEY = "test-key-Zq8"
AUTH = {"authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """v1: passed both gate sets (production); v2: failed the real offline gate; v3: model.onnx broken."""
    root = tmp_path_factory.mktemp("reliability")
    with throwaway_store(root, "serving-reliability") as uri:
        first = tiny_onnx_classifier(root, 1)
        v1 = register(first, NAME, "gated")
        v2 = register(tiny_onnx_classifier(root, 2), NAME, "failed-gate", accuracy=0.5)
        v3 = register(first, NAME, "broken")
        client = MlflowClient(uri)
        records.update_record(client, NAME, v1, passed_both_gate_sets)
        family = get_family("intent")
        decision = service.gate_offline(client, family, NAME, v2, family.default_offline_gates())
        assert not decision.passed and "accuracy" in decision.reason
        service.write_gate_record(client, NAME, v2, decision)
        broken = break_onnx_graphs(client, v3)
        stages.promote_to_production(client, NAME, v1, "test")
    return uri, client, v1, v2, v3, broken


def passed_both_gate_sets(record: records.VersionRecord) -> None:
    for gate_set in ("offline", "shadow"):
        record.record_gates(gate_set, "pass", "all gates passed (recorded by the test)", {})


def break_onnx_graphs(client: MlflowClient, version: str) -> list[Path]:
    """Overwrite the version's ONNX graphs in the artifact store with bytes that are not a graph."""
    source = client.get_model_version(NAME, version).source  # models:/m-<logged model id>
    location = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    graphs = sorted(Path(unquote(urlparse(location).path)).rglob("*.onnx"))
    assert graphs, location
    for graph in graphs:
        graph.write_bytes(b"this is not an ONNX graph")
    return graphs


@pytest.fixture(scope="module")
def server(store):
    uri, client, v1, v2, v3, _ = store
    port = free_port()
    process = start_server(uri, port, MANGADISTILL_API_KEY=API_KEY)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process)
        yield base, client, v1, v2, v3
    finally:
        process.terminate()  # SIGTERM: run.py shuts uvicorn down (tests/integration/test_process_signals.py)
        process.wait(timeout=30)


def health(base: str) -> dict:
    return httpx.get(f"{base}/health", timeout=5).json()


def predict(base: str, text: str = "where is my order MA-123456?") -> httpx.Response:
    return httpx.post(f"{base}/predict", json={"text": text}, headers=AUTH, timeout=10)


def wait_until(condition, what: str, timeout: float = 20.0, every: float = 0.2) -> float:
    """Seconds until `condition()` held; fails naming `what` after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
        time.sleep(every)
    return time.monotonic() - started


def serve(base: str, client: MlflowClient, version: str) -> None:
    """Move production to `version` by hand (what the MLflow UI does) and wait until the server serves it."""
    client.set_registered_model_alias(NAME, stages.PRODUCTION, version)
    wait_until(lambda: (h := health(base))["model_version"] == version and h["status"] == "ok",
               f"serving version {version}")


def test_api_key_guards_predict_and_leaves_health_and_metrics_open(server):
    base = server[0]
    assert_one_error(httpx.post(f"{base}/predict", json={"text": "hi"}, timeout=10), 401, "Bearer <key>")
    assert_one_error(httpx.post(f"{base}/predict", json={"text": "hi"}, headers={"authorization": "Bearer nope"},
                                timeout=10), 401, "Bearer <key>")
    assert predict(base).status_code == 200
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    assert httpx.get(f"{base}/metrics", timeout=5).status_code == 200
    assert metric(base, "mangadistill_requests_total", endpoint="/predict", status="401") == 2


def test_a_version_that_failed_its_gate_is_flagged_when_put_in_production_by_hand(server):
    base, client, v1, v2, _ = server
    serve(base, client, v1)
    gated = health(base)
    assert (gated["gate_record"], gated["gates"], gated["flag"]) == ("pass", "offline pass, shadow pass", None)

    client.set_registered_model_alias(NAME, stages.PRODUCTION, v2)  # by hand; no pipeline runs
    wait_until(lambda: health(base)["model_version"] == v2, f"swap to version {v2}")
    flagged = health(base)
    assert flagged["status"] == "ok" and flagged["gate_record"] == "fail" and flagged["gates"] == "offline fail"
    assert flagged["flag"] == f"production version {v2} has no passing gate record"
    assert records.read_record(client, NAME, v2).flag is None  # the server's own reading, not a pipeline's tag
    assert predict(base).json()["model_version"] == v2
    serve(base, client, v1)
    assert health(base)["flag"] is None


def test_a_broken_version_is_never_swapped_in_and_the_old_one_keeps_serving(server):
    base, client, v1, _, v3 = server
    serve(base, client, v1)
    failures_before = metric(base, "mangadistill_model_swap_failures_total")

    client.set_registered_model_alias(NAME, stages.PRODUCTION, v3)
    answers: list[httpx.Response] = []

    def failed_swap_reported() -> bool:
        answers.append(predict(base))
        now = health(base)
        return now["registry_version"] == v3 and f"version {v3} did not load" in (now["last_error"] or "")

    wait_until(failed_swap_reported, f"the failed load of version {v3} on /health")
    answers += [predict(base) for _ in range(5)]
    assert {(a.status_code, a.json()["model_version"]) for a in answers} == {(200, v1)}
    degraded = health(base)
    assert degraded["status"] == "degraded" and degraded["model_version"] == v1
    assert degraded["last_error"].endswith(f"still serving version {v1}") and "ONNX" in degraded["last_error"]
    assert degraded["swap_failures"] >= 1
    assert metric(base, "mangadistill_model_swap_failures_total") >= failures_before + 1
    assert metric(base, "mangadistill_model_degraded") == 1
    assert metric(base, "mangadistill_model_info", name=NAME, version=v1, stage="production") == 1

    client.set_registered_model_alias(NAME, stages.PRODUCTION, v1)  # back: recovered without a restart
    wait_until(lambda: health(base)["status"] == "ok", "recovery after the alias moved back", timeout=10)
    assert health(base)["last_error"] is None and metric(base, "mangadistill_model_degraded") == 0
    assert predict(base).json()["model_version"] == v1


def test_an_alias_move_under_load_loses_no_request(server, record_property):
    base, client, v1, v2, _ = server
    serve(base, client, v1)
    swap = Swap(3.0, v2, lambda: client.set_registered_model_alias(NAME, stages.PRODUCTION, v2))
    answers, moved_at, elapsed = run_load(base, 10.0, 8, query_texts(), headers=AUTH, max_requests=20_000, swap=swap)
    report = summarize(answers, elapsed, 8, base, swap, moved_at)
    record_property("load_during_swap", json.dumps(report))
    print(json.dumps(report))
    assert report["errors"] == 0, report["error_kinds"]
    assert report["requests"] > 50 and report["model_versions"] == sorted({v1, v2}), report
    assert report["swap"]["first_answer_from_new_version_at_s"] is not None, report
    first_new = next(a for a in answers if a.version == v2)
    after = [a.version for a in answers if a.started_s > first_new.started_s + first_new.latency_ms / 1e3]
    assert after and set(after) == {v2}  # the swap is one assignment: nothing answers from v1 afterwards
    assert health(base)["model_version"] == v2 and health(base)["swaps"] >= 1
