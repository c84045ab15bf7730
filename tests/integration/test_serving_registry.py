"""The intent service in a real uvicorn process on loopback, following a real SQLite MLflow registry.

Moving the `production` alias with MlflowClient (what the MLflow UI does) changes the served version
within 10 s, without a restart and without a failed request; /health, /metrics and 4xx errors over HTTP.
A failed gate, a broken version, an alias move under load and the API key: `test_serving_reliability.py`.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from mangadistill.lifecycle import stages
from tests.unit.test_serving_app import assert_one_error
from tests.integration._tiny_models import register, throwaway_store, tiny_onnx_classifier

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NAME = "mangaassist-intent"  # what `run.py --serve intent` serves


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A registry of its own with two versions, version 1 in production."""
    root = tmp_path_factory.mktemp("serving")
    with throwaway_store(root, "serving-test") as uri:
        v1 = register(tiny_onnx_classifier(root, 1), NAME, "one")
        v2 = register(tiny_onnx_classifier(root, 2), NAME, "two")
        client = MlflowClient(uri)
        stages.promote_to_production(client, NAME, v1, "test")
    return uri, client, v1, v2


def start_server(uri: str, port: int, **env_vars: str) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, **env_vars}
    return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "run.py"), "--serve", "intent", "--port", str(port),
                             "--poll-seconds", "1"], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_healthy(base: str, server: subprocess.Popen, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(f"{base}/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not become healthy")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def server(store):
    uri, client, v1, v2 = store
    port = free_port()
    process = start_server(uri, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process)
        yield base, client, v1, v2
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def test_serves_production_and_follows_an_alias_moved_by_hand(server):
    base, client, v1, v2 = server
    first = httpx.post(f"{base}/predict", json={"text": "where is my order MA-123456?"}, timeout=10)
    assert first.status_code == 200 and first.json()["model_version"] == v1
    assert 0.0 < first.json()["confidence"] <= 1.0 and first.json()["intent"]
    health = httpx.get(f"{base}/health", timeout=5).json()
    assert health["model_version"] == v1 and health["status"] == "ok" and health["gate_record"] == "missing"

    client.set_registered_model_alias(NAME, "production", v2)  # what the MLflow UI's alias editor does
    moved, versions, statuses = time.monotonic(), [], []
    while time.monotonic() - moved < 10.0:
        response = httpx.post(f"{base}/predict", json={"texts": ["recommend a dark fantasy manga", "hi"]}, timeout=10)
        statuses.append(response.status_code)
        versions.append(response.json().get("model_version"))
        if versions[-1] == v2:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - moved
    assert versions[-1] == v2, f"still serving {versions[-1]} {elapsed:.1f} s after the alias moved"
    assert set(statuses) == {200}  # no failed request during the swap
    assert metric(base, "mangadistill_model_info", name=NAME, version=v2, stage="production") == 1
    assert metric(base, "mangadistill_model_swaps_total") == 1
    assert metric(base, "mangadistill_requests_total", endpoint="/predict", status="200") == len(statuses) + 1
    assert metric(base, "mangadistill_predict_latency_seconds_count") == len(statuses) + 1


def metric(base: str, metric_name: str, **labels: str) -> float | None:
    """One sample of the server's /metrics page, read with prometheus_client's parser."""
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == metric_name and sample.labels == labels:
                return sample.value
    return None


def test_bad_requests_are_4xx_over_http(server):
    """A few rows of the unit test's table through uvicorn, with the production limits (64 texts, 256 kB)."""
    base, json_type = server[0], {"content-type": "application/json"}
    assert_one_error(httpx.post(f"{base}/predict", json={"texts": ["hi"] * 65}, timeout=10), 413, "limit is 64")
    assert_one_error(httpx.post(f"{base}/predict", json={"text": ""}, timeout=10), 422, "text 0 is empty")
    assert_one_error(httpx.post(f"{base}/predict", content=b"nope", headers=json_type, timeout=10), 400,
                     "not valid JSON")
    assert_one_error(httpx.post(f"{base}/predict", content=b'{"text": "\xc3("}', headers=json_type, timeout=10),
                     400, "not valid UTF-8")
    assert_one_error(httpx.post(f"{base}/predict", content=b'{"text": "' + b"a" * 300_000 + b'"}',
                                headers=json_type, timeout=10), 413, "the limit is 256000")
    chunks = (part for part in (b'{"texts": [', b'"a",' * 70_000, b'"a"]}'))  # no content-length: chunked
    assert_one_error(httpx.post(f"{base}/predict", content=chunks, headers=json_type, timeout=10), 413,
                     "the limit is 256000")
    assert_one_error(httpx.get(f"{base}/predict", timeout=10), 405, "Method Not Allowed")
    assert httpx.post(f"{base}/predict", json={"text": "still up?"}, timeout=10).status_code == 200
