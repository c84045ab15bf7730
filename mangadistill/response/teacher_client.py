"""Teacher generation (runbook 7.10) through the official `openai` client: bounded, retried, cached, resumable.

Each `TeacherRequest` (an id and its chat messages, `chat.messages_for`) becomes one chat completion from the
endpoint's model; `generate_answers` returns the answers in request order with the statistics of the runbook's
11.1 ``teacher_label_generation`` event (`TeacherGeneration.event`).

Retries are the SDK's own. Read in openai 3.57 (``openai/_base_client.py``, ``SyncAPIClient.request`` and
``_should_retry`` / ``_calculate_retry_timeout``): up to ``max_retries`` further attempts on HTTP 408, 409, 429
and every 5xx, on timeouts and on connection errors; the wait honours ``retry-after-ms`` then ``Retry-After``
(seconds or an HTTP date) when it is above 0 and at most 120 s (a longer one is not retried), else it is
exponential, 0.5 s x 2^n capped at 8 s, less up to 25 % jitter. Each attempt carries
``x-stainless-retry-count``, and the raw response reports ``retries_taken``, which is how retries are counted
here (attempts that end in a final failure are not counted: the SDK raises instead).

The cache is one append-only JSON-lines file, ``<cache_dir>/teacher_answers.jsonl``, written as each answer
arrives (one unbuffered write per line), so a killed run resumes without asking again for a finished prompt.
A line is keyed by sha256 of (model, messages, temperature, max_tokens): another model or other parameters
miss. A torn or unreadable line (a process killed mid-write leaves at most one) is skipped, counted and
logged, never fatal; its prompt is simply asked again. The file holds answers, not prompts. One run per cache
directory at a time.

Message contents (shopper text) are never logged; logs carry counts, the model and the endpoint.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
from tqdm import tqdm

from mangadistill.errors import ConfigError, DataError, TeacherError

logger = logging.getLogger(__name__)

#: The key sent to a loopback endpoint when `TeacherEndpoint.api_key_env` is unset (local servers ignore it).
LOOPBACK_PLACEHOLDER_KEY = "not-needed"
#: The cache file inside `cache_dir`.
CACHE_FILE = "teacher_answers.jsonl"
_CACHE_FORMAT = 1
#: Event keys of runbook 11.1, in its order.
EVENT_KEYS = ("event", "run_id", "teacher_model", "rows_processed", "avg_prompt_tokens", "avg_response_tokens",
              "teacher_refusal_rate", "teacher_entropy_mean", "low_confidence_fraction", "estimated_cost_usd")
_CALLER_KEYS = frozenset({"teacher_refusal_rate", "teacher_entropy_mean"})

LowConfidence = Callable[["TeacherRequest", str], bool]


@dataclass(frozen=True, kw_only=True)
class TeacherEndpoint:
    """Where the teacher runs, how hard to push it, and what it costs (USD per million tokens, to be stated)."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 8
    max_retries: int = 5
    timeout_s: float = 60.0
    temperature: float = 0.0
    max_tokens: int = 512
    price_input_per_1m_usd: float
    price_output_per_1m_usd: float

    def __post_init__(self) -> None:
        scheme = urlsplit(self.base_url).scheme
        _require(scheme in ("http", "https"), "base_url", f"'{self.base_url}'", "an http(s) URL")
        _require(bool(self.model.strip()), "model", "empty", "a model name")
        _require(bool(self.api_key_env.strip()), "api_key_env", "empty", "an environment variable name")
        _require(1 <= self.max_concurrency <= 256, "max_concurrency", self.max_concurrency, "1..256")
        _require(0 <= self.max_retries <= 20, "max_retries", self.max_retries, "0..20")
        _require(self.timeout_s > 0, "timeout_s", self.timeout_s, "> 0")
        _require(0.0 <= self.temperature <= 2.0, "temperature", self.temperature, "0.0..2.0")
        _require(self.max_tokens >= 1, "max_tokens", self.max_tokens, ">= 1")
        _require(self.price_input_per_1m_usd >= 0, "price_input_per_1m_usd", self.price_input_per_1m_usd, ">= 0")
        _require(self.price_output_per_1m_usd >= 0, "price_output_per_1m_usd", self.price_output_per_1m_usd, ">= 0")

    def api_key(self) -> str:
        """The key from `api_key_env`; a placeholder for a loopback server when the variable is unset."""
        key = os.environ.get(self.api_key_env, "").strip()
        if key:
            return key
        if is_loopback(self.base_url):
            return LOOPBACK_PLACEHOLDER_KEY
        raise ConfigError(f"teacher endpoint {self.base_url} needs an API key: set the environment variable "
                          f"{self.api_key_env} (or point teacher api_key_env at the variable that holds it)")

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        """List-price cost of that many tokens."""
        return (prompt_tokens * self.price_input_per_1m_usd + completion_tokens * self.price_output_per_1m_usd) / 1e6


@dataclass(frozen=True)
class TeacherRequest:
    """One row to label: its id (unique in a run) and the chat messages the teacher sees."""

    id: str
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class TeacherAnswer:
    """The teacher's answer to one request; `cached` when it came from an earlier run's cache."""

    id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    cached: bool
    low_confidence: bool


@dataclass(frozen=True)
class CachedAnswer:
    """What the cache keeps of one completion (no prompt text)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class TeacherStats:
    """What a generation run did. ``rows_processed = cache_hits + requests_sent + repeated_rows``.

    `estimated_cost_usd` prices only the requests paid for in this run; `estimated_cost_usd_including_cached`
    adds what the cached answers used here cost when they were first generated. Both are tokens x the
    endpoint's list prices (provider discounts and billed-but-failed attempts are not modelled).
    """

    rows_processed: int
    requests_sent: int
    cache_hits: int
    repeated_rows: int  # rows whose (model, messages, parameters) repeat an earlier row: asked once
    retries: int  # SDK retries behind the successful requests
    torn_cache_lines: int
    avg_prompt_tokens: float
    avg_response_tokens: float
    estimated_cost_usd: float
    estimated_cost_usd_including_cached: float
    low_confidence_fraction: float | None  # None when no `low_confidence` rule was given


@dataclass(frozen=True)
class TeacherGeneration:
    """Answers in request order, and the run's statistics."""

    teacher_model: str
    answers: list[TeacherAnswer]
    stats: TeacherStats

    def event(self, run_id: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The runbook 11.1 ``teacher_label_generation`` event, then this run's other counts, then `extra`.

        `extra` supplies what only the caller knows (``teacher_refusal_rate``, ``teacher_entropy_mean``: None
        when not given; entropy needs logprobs, which this client does not request) and any further keys; it
        may not overwrite a measured value.
        """
        extra = dict(extra or {})
        s = self.stats
        measured = {
            "event": "teacher_label_generation", "run_id": run_id, "teacher_model": self.teacher_model,
            "rows_processed": s.rows_processed, "avg_prompt_tokens": round(s.avg_prompt_tokens, 2),
            "avg_response_tokens": round(s.avg_response_tokens, 2),
            "teacher_refusal_rate": None, "teacher_entropy_mean": None,
            "low_confidence_fraction": s.low_confidence_fraction,
            "estimated_cost_usd": round(s.estimated_cost_usd, 6),
            "estimated_cost_usd_including_cached": round(s.estimated_cost_usd_including_cached, 6),
            "requests_sent": s.requests_sent, "cache_hits": s.cache_hits, "repeated_rows": s.repeated_rows,
            "retries": s.retries, "torn_cache_lines": s.torn_cache_lines,
        }
        clash = sorted((set(extra) & set(measured)) - _CALLER_KEYS)
        if clash:
            raise ValueError(f"extra may not overwrite measured event keys {clash}; "
                             f"it may set {sorted(_CALLER_KEYS)} and new keys")
        return {**measured, **extra}


def is_loopback(base_url: str) -> bool:
    """True when `base_url` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cache_key(endpoint: TeacherEndpoint, messages: list[dict[str, str]]) -> str:
    """sha256 of everything that changes the answer: model, messages, temperature and max_tokens."""
    payload = {"v": _CACHE_FORMAT, "model": endpoint.model, "messages": messages,
               "temperature": float(endpoint.temperature), "max_tokens": int(endpoint.max_tokens)}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AnswerCache:
    """The append-only JSON-lines answer cache of one directory (see the module docstring)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.path = Path(cache_dir) / CACHE_FILE

    def load(self) -> tuple[dict[str, CachedAnswer], int]:
        """Every readable answer by key (a later line wins), and how many lines were torn or unreadable."""
        if not self.path.exists():
            return {}, 0
        answers: dict[str, CachedAnswer] = {}
        torn = 0
        for line in self.path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            parsed = _parse_line(line)
            if parsed is None:
                torn += 1
            else:
                answers[parsed[0]] = parsed[1]
        return answers, torn

    @contextmanager
    def appender(self, model: str) -> Iterator[Callable[[str, CachedAnswer], None]]:
        """A function that appends one answer as one unbuffered write; a torn last line is closed off first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab", buffering=0) as handle:
            if handle.tell() > 0 and not self._ends_with_newline():
                _write_all(handle, b"\n")  # the torn fragment stays a line of its own and is skipped on load

            def append(key: str, answer: CachedAnswer) -> None:
                record = {"v": _CACHE_FORMAT, "key": key, "model": model, "text": answer.text,
                          "prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                          "finish_reason": answer.finish_reason}
                _write_all(handle, json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")

            yield append

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"


def generate_answers(requests: Sequence[TeacherRequest], endpoint: TeacherEndpoint, cache_dir: str | Path, *,
                     low_confidence: LowConfidence | None = None, progress: bool = True) -> TeacherGeneration:
    """Answer every request with the teacher, from the cache where possible, the rest at most
    `endpoint.max_concurrency` at a time; each new answer is cached as it arrives.

    Raises `TeacherError` (one line) when a request still fails after the SDK's retries: requests not yet
    started are cancelled, those in flight finish and are cached, so a re-run resumes. `low_confidence`
    flags answers (request, text) -> bool; without it `low_confidence_fraction` is None.
    """
    _check_requests(requests)
    cache = AnswerCache(cache_dir)
    cached, torn = cache.load()
    if torn:
        logger.warning("skipped %d torn or unreadable line(s) in %s (a killed run leaves one); "
                       "their prompts are asked again", torn, cache.path)
    keys = [cache_key(endpoint, request.messages) for request in requests]
    todo: dict[str, list[dict[str, str]]] = {}
    for key, request in zip(keys, requests):
        if key not in cached and key not in todo:
            todo[key] = request.messages
    fetched, retries = _fetch_all(todo, endpoint, cache, progress)
    answers = _answers(requests, keys, cached, fetched, low_confidence)
    stats = _stats(answers, keys, cached, fetched, endpoint, retries, torn, low_confidence is not None)
    logger.info("teacher %s: %d rows, %d requests sent, %d from cache, %d repeated, %d retries, "
                "estimated cost $%.4f this run ($%.4f including cached)", endpoint.model, stats.rows_processed,
                stats.requests_sent, stats.cache_hits, stats.repeated_rows, stats.retries,
                stats.estimated_cost_usd, stats.estimated_cost_usd_including_cached)
    return TeacherGeneration(teacher_model=endpoint.model, answers=answers, stats=stats)


def _fetch_all(todo: dict[str, list[dict[str, str]]], endpoint: TeacherEndpoint, cache: AnswerCache,
               progress: bool) -> tuple[dict[str, CachedAnswer], int]:
    """Ask for every prompt in `todo`, caching each answer as it arrives; (answers by key, SDK retries)."""
    if not todo:
        return {}, 0
    client = openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key(),
                           max_retries=endpoint.max_retries, timeout=endpoint.timeout_s)
    fetched: dict[str, CachedAnswer] = {}
    retries, failure = 0, None
    pool = ThreadPoolExecutor(endpoint.max_concurrency, thread_name_prefix="teacher")
    try:
        with cache.appender(endpoint.model) as append, tqdm(total=len(todo), desc=f"teacher {endpoint.model}",
                                                             unit="answer", disable=not progress) as bar:
            futures: dict[Future, str] = {pool.submit(_complete, client, endpoint, messages): key
                                          for key, messages in todo.items()}
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                try:
                    answer, taken = future.result()
                except (openai.OpenAIError, _MalformedResponse) as exc:
                    failure = failure or exc
                    for pending in futures:
                        pending.cancel()  # not yet started: never sent; those in flight finish and are cached
                    continue
                append(futures[future], answer)
                fetched[futures[future]] = answer
                retries += taken
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        client.close()
    if failure is not None:
        raise TeacherError(_failure_line(failure, endpoint, cache, len(fetched))) from failure
    return fetched, retries


class _MalformedResponse(Exception):
    """A 200 response this client cannot use (no choices, no usage)."""


def _complete(client: openai.OpenAI, endpoint: TeacherEndpoint,
              messages: list[dict[str, str]]) -> tuple[CachedAnswer, int]:
    """One chat completion (the SDK retries it); the answer and how many retries it took."""
    raw = client.chat.completions.with_raw_response.create(
        model=endpoint.model, messages=messages, temperature=endpoint.temperature,
        max_completion_tokens=endpoint.max_tokens)
    completion = raw.parse()
    if not completion.choices:
        raise _MalformedResponse("the response has no choices")
    if completion.usage is None:
        raise _MalformedResponse("the response has no token usage, so the run cannot be priced")
    message = completion.choices[0].message
    text = message.content if message.content is not None else (message.refusal or "")
    answer = CachedAnswer(text=text, prompt_tokens=completion.usage.prompt_tokens,
                          completion_tokens=completion.usage.completion_tokens,
                          finish_reason=completion.choices[0].finish_reason)
    return answer, raw.retries_taken


def _failure_line(exc: BaseException, endpoint: TeacherEndpoint, cache: AnswerCache, finished: int) -> str:
    """One line: endpoint, model, what failed (status and provider message), and how to resume."""
    hint = f" (check the key in ${endpoint.api_key_env})" if getattr(exc, "status_code", None) in (401, 403) else ""
    line = (f"teacher request to {endpoint.base_url} (model '{endpoint.model}') failed: {_describe(exc, endpoint)}"
            f"{hint}; {finished} answer(s) finished in this run; finished answers are cached in {cache.path}; "
            "re-run to resume")
    return " ".join(line.split())


def _describe(exc: BaseException, endpoint: TeacherEndpoint) -> str:
    """Status and provider message of a failed request, shortened."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else exc.message
        return f"HTTP {exc.status_code}: {message[:300]}"
    if isinstance(exc, openai.APITimeoutError):
        return f"timed out after {endpoint.timeout_s} s on each of {endpoint.max_retries + 1} attempts"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return f"could not connect ({type(cause).__name__ if cause else 'connection error'}) after " \
               f"{endpoint.max_retries + 1} attempts"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _answers(requests: Sequence[TeacherRequest], keys: list[str], cached: dict[str, CachedAnswer],
             fetched: dict[str, CachedAnswer], low_confidence: LowConfidence | None) -> list[TeacherAnswer]:
    answers = []
    for request, key in zip(requests, keys):
        answer = fetched.get(key) or cached[key]
        flagged = bool(low_confidence(request, answer.text)) if low_confidence is not None else False
        answers.append(TeacherAnswer(id=request.id, text=answer.text, prompt_tokens=answer.prompt_tokens,
                                     completion_tokens=answer.completion_tokens, finish_reason=answer.finish_reason,
                                     cached=key not in fetched, low_confidence=flagged))
    return answers


def _stats(answers: list[TeacherAnswer], keys: list[str], cached: dict[str, CachedAnswer],
           fetched: dict[str, CachedAnswer], endpoint: TeacherEndpoint, retries: int, torn: int,
           judged: bool) -> TeacherStats:
    rows = len(answers)
    used_from_cache = {key for key in keys if key not in fetched}
    cache_hits = sum(1 for key in keys if key in used_from_cache)
    paid_now = sum(endpoint.cost_usd(a.prompt_tokens, a.completion_tokens) for a in fetched.values())
    paid_before = sum(endpoint.cost_usd(cached[k].prompt_tokens, cached[k].completion_tokens) for k in used_from_cache)
    return TeacherStats(
        rows_processed=rows, requests_sent=len(fetched), cache_hits=cache_hits,
        repeated_rows=rows - cache_hits - len(fetched), retries=retries, torn_cache_lines=torn,
        avg_prompt_tokens=sum(a.prompt_tokens for a in answers) / rows if rows else 0.0,
        avg_response_tokens=sum(a.completion_tokens for a in answers) / rows if rows else 0.0,
        estimated_cost_usd=paid_now, estimated_cost_usd_including_cached=paid_now + paid_before,
        low_confidence_fraction=(sum(a.low_confidence for a in answers) / rows if rows else 0.0) if judged else None,
    )


def _check_requests(requests: Sequence[TeacherRequest]) -> None:
    """Ids unique; messages a non-empty list of {role, content} strings. Errors name the id, never the text."""
    seen: set[str] = set()
    for request in requests:
        if request.id in seen:
            raise DataError(f"teacher request id '{request.id}' appears twice; ids must be unique in a run")
        seen.add(request.id)
        if not request.messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                           and isinstance(m.get("content"), str) for m in request.messages):
            raise DataError(f"teacher request '{request.id}' needs a non-empty list of messages, each "
                            "{'role': str, 'content': str} (see mangadistill.response.chat.messages_for)")


def _parse_line(line: bytes) -> tuple[str, CachedAnswer] | None:
    """(key, answer) of one cache line, or None when it is torn or not this format."""
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or record.get("v") != _CACHE_FORMAT:
            return None
        answer = CachedAnswer(text=record["text"], prompt_tokens=record["prompt_tokens"],
                              completion_tokens=record["completion_tokens"], finish_reason=record["finish_reason"])
        key = record["key"]
    except (ValueError, KeyError, TypeError):
        return None
    types_ok = (isinstance(key, str) and isinstance(answer.text, str) and isinstance(answer.prompt_tokens, int)
                and isinstance(answer.completion_tokens, int) and isinstance(answer.finish_reason, str))
    return (key, answer) if types_ok else None


def _write_all(handle: Any, data: bytes) -> None:
    """Write every byte through an unbuffered file (a raw write may take fewer)."""
    view = memoryview(data)
    while view:
        view = view[handle.write(view):]


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"teacher endpoint {name} is {value}; allowed: {allowed}")
