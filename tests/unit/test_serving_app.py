"""The intent service's HTTP contract with a stand-in model: validation (4xx), /predict, /health, /metrics."""

import pytest
from fastapi.testclient import TestClient

from mangadistill.lifecycle.record import GateSetRecord, VersionRecord
from mangadistill.serving.app import LoadedModel, ServingLimits, create_app


class _Model:
    def predict(self, texts):
        return [{"intent": "greeting" if "hi" in t else "price", "confidence": 0.9} for t in texts]


class _Follower:
    """Stands in for RegistryFollower: a fixed loaded version, no registry."""

    model_name, stage, poll_seconds, swaps, last_error, last_poll = "m", "production", 2.0, 0, None, None

    def __init__(self, loaded: bool = True):
        gated = VersionRecord(family="intent", gates={name: GateSetRecord("pass", "all passed", "now")
                                                      for name in ("offline", "shadow")})
        self.current = LoadedModel("7", _Model(), 0.0, gated, None) if loaded else None
        self.target_version = "7" if loaded else None

    def start(self):
        pass

    def stop(self):
        pass


@pytest.fixture
def client():
    with TestClient(create_app(_Follower(), ServingLimits(max_batch=3, max_chars=20, max_body_bytes=500))) as c:
        yield c


def test_predict_single_and_batch(client):
    one = client.post("/predict", json={"text": "hi there"})
    assert one.status_code == 200
    assert one.json() == {"intent": "greeting", "confidence": 0.9, "model_name": "m", "model_version": "7",
                          "stage": "production"}
    batch = client.post("/predict", json={"texts": ["hi", "how much is it"]}).json()
    assert [p["intent"] for p in batch["predictions"]] == ["greeting", "price"] and batch["model_version"] == "7"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({}, 422, "exactly one of 'text'"),
    ({"text": "a", "texts": ["b"]}, 422, "exactly one of 'text'"),
    ({"texts": []}, 422, "'texts' is empty"),
    ({"text": "   "}, 422, "text 0 is empty"),
    ({"texts": ["a", "b", "c", "d"]}, 413, "the limit is 3"),
    ({"text": "x" * 21}, 413, "21 characters; the limit is 20"),
    ({"text": 5}, 422, "text: Input should be a valid string"),
    ({"texts": "not a list"}, 422, "texts: Input should be a valid list"),
    ({"query": "hi"}, 422, "query: Extra inputs are not permitted"),
])
def test_bad_requests_get_clear_4xx(client, body, status, message):
    response = client.post("/predict", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_body_size_limit_and_non_json(client):
    response = client.post("/predict", content=b'{"text": "' + b"a" * 600 + b'"}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit is 500" in response.json()["error"]
    broken = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 422


def test_health_and_metrics_report_version_and_counts(client):
    client.post("/predict", json={"text": "hi"})
    client.post("/predict", json={"texts": []})
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["model_version"] == "7" and health.json()["status"] == "ok"
    assert health.json()["gate_record"] == "pass"
    page = client.get("/metrics").text
    assert 'intent_requests_total{endpoint="/predict",status="200"} 1' in page
    assert 'intent_requests_total{endpoint="/predict",status="422"} 1' in page
    assert 'intent_predict_latency_ms_bucket{le="+Inf"} 1' in page and "intent_predict_latency_ms_count 1" in page
    assert 'intent_model_info{name="m",version="7",stage="production"} 1' in page


def test_no_model_yet_is_503():
    with TestClient(create_app(_Follower(loaded=False))) as c:
        assert c.post("/predict", json={"text": "hi"}).status_code == 503
        assert c.get("/health").status_code == 503 and c.get("/health").json()["status"] == "unavailable"
