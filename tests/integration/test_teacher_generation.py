"""Teacher generation (`mangadistill.response.teacher_client`) through the official `openai` client against the
project's own OpenAI-compatible server on loopback, with faults injected in front of it: order, usage and cost,
the SDK's retries, exhaustion, a SIGKILLed run that resumes, and cache misses on changed parameters."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from mangadistill.errors import ConfigError, TeacherError
from mangadistill.response.chat import ChatResult, messages_for, parse_user_message
from mangadistill.response.teacher_client import (
    EVENT_KEYS, LOOPBACK_PLACEHOLDER_KEY, AnswerCache, TeacherEndpoint, TeacherRequest, cache_key, generate_answers,
)
from mangadistill.serving.openai_chat import ChatLimits, create_chat_app
from mangadistill.serving.loopback import serve

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PRICE_IN, PRICE_OUT = 2.0, 8.0  # USD per million tokens


class WordModel:
    """Deterministic: "<name>: <shopper prompt>", one token per word; waits `delay(prompt)` seconds first."""

    def __init__(self, name: str, delay=lambda prompt: 0.0) -> None:
        self.name, self.delay = name, delay

    def complete(self, messages, *, max_tokens, temperature):
        prompt, _ = parse_user_message(messages[-1]["content"])
        time.sleep(self.delay(prompt))
        words = f"{self.name}: {prompt}".split()[:max_tokens]
        return ChatResult(" ".join(words), sum(len(m["content"].split()) for m in messages), len(words))

    def stream(self, messages, *, max_tokens, temperature):
        yield self.complete(messages, max_tokens=max_tokens, temperature=temperature).text


class FaultInjector:
    """ASGI middleware in front of the chat app: records every chat request (shopper prompt, the SDK's
    ``x-stainless-retry-count``) and answers planned faults instead of the model: an HTTP status (429 or 5xx,
    with ``Retry-After: 0`` and ``retry-after-ms: 1`` so the SDK retries at once) or ``"hang"`` (no answer
    for 2 s, past the client's timeout)."""

    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.seen: list[tuple[str, int]] = []
        self.answered: list[str] = []  # prompts the model answered with 200
        self.faults: dict[str, list[int | str]] = {}

    def reset(self, faults: dict[str, list[int | str]] | None = None) -> None:
        with self.lock:
            self.seen, self.answered, self.faults = [], [], {k: list(v) for k, v in (faults or {}).items()}

    def attempts(self) -> Counter:
        return Counter(prompt for prompt, _ in self.seen)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        body = await _read(receive)
        prompt, _ = parse_user_message(json.loads(body)["messages"][-1]["content"])
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self.lock:
            self.seen.append((prompt, int(headers.get("x-stainless-retry-count", "0"))))
            plan = self.faults.get(prompt)
            fault = plan.pop(0) if plan else None
        if fault == "hang":
            await asyncio.sleep(2.0)
            fault = 504
        if fault is not None:
            await _send_fault(send, int(fault))
            return
        status: list[int] = []

        async def recorded(message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        sent = [False]

        async def replay():
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, recorded)
        if status == [200]:
            with self.lock:
                self.answered.append(prompt)


async def _read(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_fault(send, status: int) -> None:
    body = json.dumps({"error": {"message": f"injected fault {status}", "type": "server_error", "param": None,
                                 "code": None}}).encode()
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"0"), (b"retry-after-ms", b"1")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def rows(n: int, start: int = 0) -> list[TeacherRequest]:
    """`n` rows in the project's chat layout, prompts "question <i>" (also used by the killed child process)."""
    return [TeacherRequest(f"row-{i}", messages_for(f"question {i}", [f"Volume {i} is in stock."]))
            for i in range(start, start + n)]


def prompt_of(request: TeacherRequest) -> str:
    return parse_user_message(request.messages[-1]["content"])[0]


@pytest.fixture(scope="module")
def injector():
    models = {"echo": WordModel("echo"), "echo-2": WordModel("echo-2"),
              "reverse": WordModel("reverse", delay=lambda p: 0.04 * (5 - int(p.split()[-1]))),
              "slow": WordModel("slow", delay=lambda p: 0.15)}
    return FaultInjector(create_chat_app(models, limits=ChatLimits(max_concurrency=8)))


@pytest.fixture(scope="module")
def server(injector):
    with serve(injector) as running:
        yield running


@pytest.fixture
def endpoint(server, injector, monkeypatch):
    monkeypatch.delenv("TEACHER_TEST_KEY", raising=False)
    injector.reset()
    return TeacherEndpoint(base_url=f"{server.url}/v1", model="echo", api_key_env="TEACHER_TEST_KEY",
                           max_concurrency=4, max_retries=3, timeout_s=10.0, temperature=0.0, max_tokens=64,
                           price_input_per_1m_usd=PRICE_IN, price_output_per_1m_usd=PRICE_OUT)


def test_answers_come_back_in_request_order_with_usage_and_cost(endpoint, injector, tmp_path):
    requests = rows(5)  # "reverse" answers question 0 last
    generation = generate_answers(requests, replace(endpoint, model="reverse"), tmp_path,
                                  low_confidence=lambda request, text: text.endswith("3"))
    assert injector.answered[0] != "question 0"  # they really arrived out of order
    assert [a.id for a in generation.answers] == [r.id for r in requests]
    expected = [WordModel("reverse").complete(r.messages, max_tokens=64, temperature=0.0) for r in requests]
    assert [a.text for a in generation.answers] == [e.text for e in expected]
    assert [(a.prompt_tokens, a.completion_tokens) for a in generation.answers] == \
        [(e.prompt_tokens, e.completion_tokens) for e in expected]
    cost = sum(e.prompt_tokens * PRICE_IN + e.completion_tokens * PRICE_OUT for e in expected) / 1e6
    stats = generation.stats
    assert stats.estimated_cost_usd == pytest.approx(cost, rel=1e-12) and cost > 0
    assert (stats.rows_processed, stats.requests_sent, stats.cache_hits, stats.retries) == (5, 5, 0, 0)
    assert stats.avg_prompt_tokens == pytest.approx(sum(e.prompt_tokens for e in expected) / 5)
    assert stats.low_confidence_fraction == pytest.approx(1 / 5)
    assert not any(a.cached for a in generation.answers)

    again = generate_answers(requests, replace(endpoint, model="reverse"), tmp_path, progress=False)
    assert len(injector.seen) == 5  # nothing asked twice
    assert all(a.cached for a in again.answers) and again.answers[0].text == generation.answers[0].text
    assert (again.stats.requests_sent, again.stats.cache_hits, again.stats.estimated_cost_usd) == (0, 5, 0.0)
    assert again.stats.estimated_cost_usd_including_cached == pytest.approx(cost, rel=1e-12)
    assert again.stats.low_confidence_fraction is None  # no rule given: not measured, not 0

    event = generation.event("labeling_test", {"teacher_refusal_rate": 0.2, "split": "train"})
    assert tuple(event)[:len(EVENT_KEYS)] == EVENT_KEYS
    assert event["event"] == "teacher_label_generation" and event["teacher_model"] == "reverse"
    assert event["teacher_refusal_rate"] == 0.2 and event["teacher_entropy_mean"] is None
    assert event["estimated_cost_usd"] == pytest.approx(cost, abs=1e-6) and event["split"] == "train"
    assert event["rows_processed"] == 5 and event["low_confidence_fraction"] == pytest.approx(0.2)
    json.dumps(event)
    with pytest.raises(ValueError, match="rows_processed"):
        generation.event("labeling_test", {"rows_processed": 1})


def test_rows_with_the_same_prompt_are_asked_once(endpoint, injector, tmp_path):
    requests = rows(2) + [TeacherRequest("row-0-again", rows(1)[0].messages)]
    generation = generate_answers(requests, endpoint, tmp_path, progress=False)
    assert injector.attempts() == {"question 0": 1, "question 1": 1}
    assert generation.answers[2].text == generation.answers[0].text
    stats = generation.stats
    assert (stats.rows_processed, stats.requests_sent, stats.cache_hits, stats.repeated_rows) == (3, 2, 0, 1)


def test_429_500_and_timeouts_are_retried_by_the_sdk(endpoint, injector, tmp_path):
    injector.reset({"question 0": [429], "question 1": [500], "question 2": [503, 429], "question 3": ["hang"]})
    requests = rows(6)
    generation = generate_answers(requests, replace(endpoint, timeout_s=1.0), tmp_path, progress=False)
    assert [a.text for a in generation.answers] == [f"echo: question {i}" for i in range(6)]
    assert injector.attempts() == {"question 0": 2, "question 1": 2, "question 2": 3, "question 3": 2,
                                   "question 4": 1, "question 5": 1}
    assert sorted(n for p, n in injector.seen if p == "question 2") == [0, 1, 2]  # x-stainless-retry-count
    assert generation.stats.retries == 5
    assert generation.event("r")["retries"] == 5


def test_exhausted_retries_raise_one_line_and_keep_finished_answers(endpoint, injector, tmp_path):
    injector.reset({"question 2": [500] * 10})
    requests = rows(8)
    with pytest.raises(TeacherError) as caught:
        generate_answers(requests, replace(endpoint, max_retries=2, max_concurrency=2), tmp_path, progress=False)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 1
    for part in (endpoint.base_url, "'echo'", "HTTP 500", "injected fault 500", "re-run to resume"):
        assert part in message, (part, message)
    assert injector.attempts()["question 2"] == 3  # 1 + max_retries
    cached, torn = AnswerCache(tmp_path).load()
    answered = {cache_key(endpoint, r.messages) for r in requests if prompt_of(r) in injector.answered}
    assert set(cached) == answered and torn == 0  # every answer the server gave is cached, nothing else
    assert len(cached) < 8

    injector.reset()
    resumed = generate_answers(requests, endpoint, tmp_path, progress=False)
    assert sorted(injector.attempts()) == sorted(prompt_of(r) for r in requests
                                                 if cache_key(endpoint, r.messages) not in cached)
    assert [a.text for a in resumed.answers] == [f"echo: question {i}" for i in range(8)]
    assert resumed.stats.cache_hits == len(cached)


CHILD = """
import json, sys
from mangadistill.response.teacher_client import TeacherEndpoint, generate_answers
from tests.integration.test_teacher_generation import rows
generate_answers(rows(20), TeacherEndpoint(**json.loads(sys.argv[1])), sys.argv[2], progress=False)
"""


def test_a_killed_run_resumes_asking_only_for_the_rest(endpoint, injector, tmp_path):
    slow = replace(endpoint, model="slow", max_concurrency=2, max_retries=0)
    requests = rows(20)
    env = {k: v for k, v in os.environ.items() if k != "TEACHER_TEST_KEY"}
    log = tmp_path / "child.log"
    with open(log, "wb") as output:
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(asdict(slow)), str(tmp_path / "cache")],
                                 cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    cache = AnswerCache(tmp_path / "cache")
    deadline = time.monotonic() + 60
    try:
        while len(cache.load()[0]) < 5:
            assert child.poll() is None, f"the child ended before it was killed: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the child cached nothing in 60 s"
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    with open(cache.path, "ab") as handle:  # what a kill inside a write leaves behind
        handle.write(b'{"v": 1, "key": "0123", "te')
    cached, _ = cache.load()
    assert 5 <= len(cached) < 20
    assert {cache_key(slow, r.messages) for r in requests} >= set(cached)  # the child asked the same way

    injector.reset()
    generation = generate_answers(requests, slow, tmp_path / "cache", progress=False)
    remaining = [prompt_of(r) for r in requests if cache_key(slow, r.messages) not in cached]
    assert injector.attempts() == Counter(remaining)  # exactly the rest, each once
    assert [a.text for a in generation.answers] == [f"slow: question {i}" for i in range(20)]
    assert generation.stats.cache_hits == len(cached) and generation.stats.requests_sent == len(remaining)
    assert generation.stats.torn_cache_lines == 1
    final, torn = cache.load()
    assert len(final) == 20 and torn == 1  # the fragment stays one skipped line; later answers are intact


def test_another_model_or_parameters_miss_the_cache(endpoint, injector, tmp_path):
    requests = rows(3)
    generate_answers(requests, endpoint, tmp_path, progress=False)
    for changed in (replace(endpoint, model="echo-2"), replace(endpoint, temperature=0.7),
                    replace(endpoint, max_tokens=2)):
        injector.reset()
        generation = generate_answers(requests, changed, tmp_path, progress=False)
        assert generation.stats.requests_sent == 3 and len(injector.seen) == 3, changed
    injector.reset()
    assert generate_answers(requests, endpoint, tmp_path, progress=False).stats.cache_hits == 3
    assert injector.seen == []


def test_the_api_key_comes_from_the_named_variable(monkeypatch):
    remote = TeacherEndpoint(base_url="https://api.openai.com/v1", model="gpt-4.1-2025-04-14",
                             api_key_env="MANGA_TEACHER_KEY", price_input_per_1m_usd=2.0, price_output_per_1m_usd=8.0)
    monkeypatch.delenv("MANGA_TEACHER_KEY", raising=False)
    with pytest.raises(ConfigError, match="MANGA_TEACHER_KEY"):
        remote.api_key()
    assert replace(remote, base_url="http://127.0.0.1:8000/v1").api_key() == LOOPBACK_PLACEHOLDER_KEY
    monkeypatch.setenv("MANGA_TEACHER_KEY", "sk-test")
    assert remote.api_key() == "sk-test"
    with pytest.raises(ConfigError, match="temperature"):
        replace(remote, temperature=3.0)
