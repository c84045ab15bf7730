"""The model service's HTTP contract with a stand-in model: every malformed request is a 4xx with the one error
shape, the optional API key, /health and /metrics (read with prometheus_client's parser), and the registry
follower keeping the old version when a new one does not load."""

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mangadistill.lifecycle.record import GateSetRecord, VersionRecord
from mangadistill.serving import follower as follower_module
from mangadistill.serving.app import create_app
from mangadistill.serving.follower import LoadedModel, RegistryFollower
from mangadistill.serving.guard import ServingLimits, authorized

LIMITS = ServingLimits(max_batch=3, max_chars=20, max_body_bytes=500)
JSON = {"content-type": "application/json"}


class _Model:
    def predict(self, texts):
        return [{"intent": "greeting" if "hi" in t else "price", "confidence": 0.9} for t in texts]


class _Broken:
    def predict(self, texts):
        raise RuntimeError("onnxruntime exploded\nsecond line")


def _gated(*decisions: str) -> VersionRecord:
    return VersionRecord(family="intent", gates={name: GateSetRecord(decision, "", "now")
                                                 for name, decision in zip(("offline", "shadow"), decisions)})


class _Follower:
    """Stands in for RegistryFollower: a fixed loaded version, no registry."""

    model_name, stage, poll_seconds, last_error, last_poll = "m", "production", 2.0, None, None
    swaps = swap_failures = 0

    def __init__(self, loaded: bool = True, model=None, record: VersionRecord | None = None, flag: str | None = None):
        record = record or _gated("pass", "pass")
        self.current = LoadedModel("7", model or _Model(), 0.0, record, flag) if loaded else None
        self.target_version = "7" if loaded else None
        self.status = "ok" if loaded else "unavailable"

    def start(self):
        pass

    def stop(self):
        pass


@pytest.fixture
def client():
    with TestClient(create_app(_Follower(), LIMITS)) as c:
        yield c


def _chunked_body():  # no content-length: the limit must hold on the bytes that arrive
    yield b'{"text": "'
    yield b"a" * 600
    yield b'"}'


def assert_one_error(response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert "\n" not in body["error"] and body["error"].strip() == body["error"] and body["error"], body
    assert message in body["error"], body


#: (id, method, path, request keyword arguments, status, part of the message)
MALFORMED = [
    ("neither text nor texts", "POST", "/predict", {"json": {}}, 422, "exactly one of 'text'"),
    ("both text and texts", "POST", "/predict", {"json": {"text": "a", "texts": ["b"]}}, 422, "exactly one of 'text'"),
    ("text null", "POST", "/predict", {"json": {"text": None}}, 422, "exactly one of 'text'"),
    ("empty text", "POST", "/predict", {"json": {"text": ""}}, 422, "text 0 is empty"),
    ("blank text", "POST", "/predict", {"json": {"text": " \t "}}, 422, "text 0 is empty"),
    ("empty list", "POST", "/predict", {"json": {"texts": []}}, 422, "'texts' is empty"),
    ("blank text in a list", "POST", "/predict", {"json": {"texts": ["hi", " "]}}, 422, "text 1 is empty"),
    ("too many texts", "POST", "/predict", {"json": {"texts": ["a", "b", "c", "d"]}}, 413, "4 texts in one request; "
     "the limit is 3"),
    ("too long text", "POST", "/predict", {"json": {"text": "x" * 21}}, 413, "21 characters; the limit is 20"),
    ("body too large", "POST", "/predict", {"content": b'{"text": "' + b"a" * 600 + b'"}', "headers": JSON}, 413,
     "the limit is 500"),
    ("body too large, chunked", "POST", "/predict", {"content": _chunked_body, "headers": JSON}, 413,
     "the limit is 500"),
    ("not JSON", "POST", "/predict", {"content": b"{not json", "headers": JSON}, 400, "not valid JSON"),
    ("invalid UTF-8", "POST", "/predict", {"content": b'{"text": "\xff\xfe"}', "headers": JSON}, 400,
     "not valid UTF-8 (byte 10)"),
    ("unpaired surrogate", "POST", "/predict", {"content": b'{"text": "hi \\ud800"}', "headers": JSON}, 422,
     "unpaired surrogate"),
    ("empty body", "POST", "/predict", {"content": b"", "headers": JSON}, 422, "request body is empty"),
    ("JSON array, not an object", "POST", "/predict", {"json": ["hi"]}, 422, "must be a JSON object"),
    ("text is a number", "POST", "/predict", {"json": {"text": 5}}, 422, "text: Input should be a valid string"),
    ("text is NaN", "POST", "/predict", {"content": b'{"text": NaN}', "headers": JSON}, 422,
     "text: Input should be a valid string"),
    ("texts is a string", "POST", "/predict", {"json": {"texts": "hi"}}, 422, "texts: Input should be a valid list"),
    ("texts holds a number", "POST", "/predict", {"json": {"texts": ["hi", 3]}}, 422,
     "texts.1: Input should be a valid string"),
    ("unknown key", "POST", "/predict", {"json": {"query": "hi"}}, 422, "query: Extra inputs are not permitted"),
    ("content-type text/plain", "POST", "/predict", {"content": b'{"text": "hi"}',
                                                     "headers": {"content-type": "text/plain"}}, 415, "not JSON"),
    ("no content-type", "POST", "/predict", {"content": b'{"text": "hi"}'}, 415, "'none' is not JSON"),
    ("GET on /predict", "GET", "/predict", {}, 405, "Method Not Allowed"),
    ("POST on /health", "POST", "/health", {"json": {}}, 405, "Method Not Allowed"),
    ("unknown path", "GET", "/v1/predict", {}, 404, "Not Found"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_requests_get_a_4xx_with_one_error_shape(client, method, path, kwargs, status, message):
    kwargs = {**kwargs, "content": kwargs["content"]()} if callable(kwargs.get("content")) else kwargs
    assert_one_error(client.request(method, path, **kwargs), status, message)


def test_the_table_holds_every_kind_and_the_server_stays_up(client):
    assert len(MALFORMED) >= 11 and {case[4] for case in MALFORMED} == {400, 404, 405, 413, 415, 422}
    assert client.post("/predict", json={"text": "hi"}).status_code == 200  # still answering after all of them


def test_json_nested_too_deep_for_the_parser_is_a_400_with_the_same_shape():
    with TestClient(create_app(_Follower()), raise_server_exceptions=False) as c:  # the real 256 kB limit
        bomb = b'{"texts": ' + b"[" * 120_000 + b"]" * 120_000 + b"}"  # 240 kB: under the limit
        assert_one_error(c.post("/predict", content=bomb, headers=JSON), 400, "error parsing the body")


def test_predict_single_and_batch(client):
    one = client.post("/predict", json={"text": "hi there"})
    assert one.status_code == 200
    assert one.json() == {"intent": "greeting", "confidence": 0.9, "model_name": "m", "model_version": "7",
                          "stage": "production"}
    batch = client.post("/predict", json={"texts": ["hi", "how much is it"]}).json()
    assert [p["intent"] for p in batch["predictions"]] == ["greeting", "price"] and batch["model_version"] == "7"
    assert client.post("/predict", json={"text": "hi"}, headers={"content-type": "application/vnd.api+json"}
                       ).status_code == 200


def test_a_model_that_fails_is_a_500_with_the_same_shape():
    with TestClient(create_app(_Follower(model=_Broken()), LIMITS), raise_server_exceptions=False) as c:
        assert_one_error(c.post("/predict", json={"text": "hi"}), 500, "(RuntimeError); see the server log")
        assert metric_value(c, "mangadistill_requests_total", endpoint="/predict", status="500") == 1


def metric_value(client: TestClient, metric: str, **labels: str) -> float | None:
    """One sample of the /metrics page, read with prometheus_client's own parser."""
    page = client.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            if sample.name == metric and sample.labels == labels:
                return sample.value
    return None


def test_health_and_metrics_report_version_and_counts(client):
    client.post("/predict", json={"text": "hi"})
    client.post("/predict", json={"texts": ["hi", "how much"]})
    client.post("/predict", json={"texts": []})
    client.get("/nowhere/1")
    client.get("/nowhere/2")
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json() | {"loaded_at": 0} == {
        "status": "ok", "model_name": "m", "stage": "production", "model_version": "7", "registry_version": "7",
        "loaded_at": 0, "last_poll_at": None, "poll_seconds": 2.0, "last_error": None, "swaps": 0,
        "swap_failures": 0, "gate_record": "pass", "gates": "offline pass, shadow pass", "flag": None}
    assert metric_value(client, "mangadistill_requests_total", endpoint="/predict", status="200") == 2
    assert metric_value(client, "mangadistill_requests_total", endpoint="/predict", status="422") == 1
    assert metric_value(client, "mangadistill_requests_total", endpoint="/health", status="200") == 1
    assert metric_value(client, "mangadistill_requests_total", endpoint="other", status="404") == 2  # bounded labels
    assert metric_value(client, "mangadistill_predicted_texts_total") == 3
    assert metric_value(client, "mangadistill_predict_latency_seconds_count") == 2
    assert metric_value(client, "mangadistill_predict_latency_seconds_bucket", le="+Inf") == 2
    assert metric_value(client, "mangadistill_model_info", name="m", version="7", stage="production") == 1
    assert metric_value(client, "mangadistill_model_swaps_total") == 0
    assert metric_value(client, "mangadistill_model_swap_failures_total") == 0
    assert metric_value(client, "mangadistill_model_degraded") == 0


@pytest.mark.parametrize(("record", "gate_record"), [(_gated("pass", "pass"), "pass"), (_gated("pass"), "missing"),
                                                     (_gated("fail"), "fail"), (_gated("pass", "fail"), "fail"),
                                                     (VersionRecord(family="intent"), "missing")])
def test_health_shows_the_gate_record_and_flag_of_the_loaded_version(record, gate_record):
    flag = None if gate_record == "pass" else "production version 7 has no passing gate record"
    with TestClient(create_app(_Follower(record=record, flag=flag), LIMITS)) as c:
        health = c.get("/health").json()
    assert (health["gate_record"], health["flag"]) == (gate_record, flag)


def test_no_model_yet_is_503():
    with TestClient(create_app(_Follower(loaded=False))) as c:
        assert_one_error(c.post("/predict", json={"text": "hi"}), 503, "no model loaded yet")
        assert c.get("/health").status_code == 503 and c.get("/health").json()["status"] == "unavailable"
        assert metric_value(c, "mangadistill_model_info", name="m", version="none", stage="production") == 1
        assert metric_value(c, "mangadistill_model_degraded") == 1


# ------------------------------------------------------------------------------------------------- API key
@pytest.mark.parametrize(("header", "allowed"), [
    (None, False), ("", False), ("Bearer", False), ("Bearer wrong", False), ("Basic s3cret-key", False),
    ("Bearer s3cret-key-and-more", False), ("Bearer s3cret-kéy".encode(), False), ("Bearer s3cret-key", True),
    ("bearer  s3cret-key ", True),
])
def test_api_key_guards_predict_only(header, allowed):
    headers = {} if header is None else {"authorization": header}
    with TestClient(create_app(_Follower(), LIMITS, api_key="s3cret-key")) as c:
        response = c.post("/predict", json={"text": "hi"}, headers=headers)
        if allowed:
            assert response.status_code == 200 and response.json()["intent"] == "greeting"
        else:
            assert_one_error(response, 401, "Authorization: Bearer <key>")
            assert response.headers["www-authenticate"] == "Bearer"
        # checked before anything else: a malformed request without the key learns nothing more
        if not allowed:
            assert c.post("/predict", content=b"{not json", headers={**headers, **JSON}).status_code == 401
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200
        assert metric_value(c, "mangadistill_requests_total", endpoint="/predict",
                            status="200" if allowed else "401") >= 1


def test_authorized_compares_bytes_and_never_raises():
    assert authorized("Bearer k\xe9y".encode().decode("latin-1"), "kéy")  # UTF-8 key as it arrives over ASGI
    assert not authorized("Bearer kéy", "kéy")  # the same text read as latin-1 is other bytes
    assert not authorized("Bearer k€y", "k€y")  # not latin-1: cannot have come over the wire
    assert not authorized(None, "key") and not authorized("key", "key")


def test_without_a_key_predict_is_open(client):
    assert client.post("/predict", json={"text": "hi"}, headers={"authorization": "Bearer anything"}).status_code == 200


# ------------------------------------------------------------------------------------- the registry follower
class _Registry:
    """Plays the registry's alias and the loader for a real RegistryFollower (no MLflow store)."""

    def __init__(self, monkeypatch):
        self.alias: str | None = "1"
        self.loads: list[str] = []
        self.broken: set[str] = set()
        monkeypatch.setattr(follower_module.stages, "version_in_stage", lambda client, name, stage: self.alias)
        monkeypatch.setattr(follower_module, "read_record", lambda client, name, version: _gated("fail"))

    def load(self, name: str, version: str):
        self.loads.append(version)
        if version in self.broken:
            raise OSError(f"models:/{name}/{version} does not load: model.onnx is not an ONNX graph")
        return _Model() if version != "9" else _Answers42()


class _Answers42:
    def predict(self, texts):
        return 42


def test_a_version_that_does_not_load_is_never_swapped_in(monkeypatch):
    registry = _Registry(monkeypatch)
    follower = RegistryFollower("m", loader=registry.load, retry_failed_seconds=3600)
    assert follower.refresh() and follower.current.version == "1" and follower.status == "ok"
    assert follower.current.flag == "production version 1 has no passing gate record"  # from its record

    registry.alias, registry.broken = "2", {"2"}
    assert not follower.refresh()
    assert follower.current.version == "1" and follower.status == "degraded" and follower.swap_failures == 1
    assert follower.last_error.startswith("version 2 did not load: OSError: models:/m/2 does not load")
    assert follower.last_error.endswith("still serving version 1")
    follower.refresh()  # not retried before retry_failed_seconds
    assert registry.loads == ["1", "2"] and follower.swap_failures == 1

    registry.alias = "1"  # the alias moved back: recovered, nothing reloaded
    assert not follower.refresh() and follower.status == "ok" and follower.last_error is None
    registry.alias = "2"  # and forward again: tried again at once
    follower.refresh()
    assert registry.loads == ["1", "2", "2"] and follower.swap_failures == 2

    registry.alias = "9"  # loads, but its warm-up answer breaks the predictor contract
    follower.refresh()
    assert follower.current.version == "1" and "version 9 did not load: TypeError: warm-up" in follower.last_error

    registry.alias = "3"
    assert follower.refresh() and follower.current.version == "3" and follower.swaps == 1
    assert follower.status == "ok" and follower.last_error is None and follower.swap_failures == 3

    registry.alias = None  # alias removed: keep serving, say so
    assert not follower.refresh() and follower.current.version == "3" and follower.status == "degraded"
    assert follower.last_error == "no 'production' alias on m; still serving version 3"


def test_a_failed_version_is_retried_after_retry_failed_seconds(monkeypatch):
    registry = _Registry(monkeypatch)
    follower = RegistryFollower("m", loader=registry.load, retry_failed_seconds=0.0)
    registry.alias, registry.broken = "2", {"2"}
    follower.refresh()
    assert follower.current is None and follower.status == "unavailable" and "nothing to serve" in follower.last_error
    registry.broken = set()  # e.g. the artifact store answered again
    assert follower.refresh() and follower.current.version == "2" and follower.status == "ok"
    assert registry.loads == ["2", "2"] and follower.swap_failures == 1 and follower.swaps == 0
