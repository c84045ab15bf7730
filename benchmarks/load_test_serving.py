#!/usr/bin/env python
"""Bounded load test of the model service: N client threads POST single queries for S seconds.

    python benchmarks/load_test_serving.py --url http://127.0.0.1:8000 --seconds 30 --concurrency 8
    # move the production alias to version 3 ten seconds in, and measure the requests around the swap:
    MLFLOW_TRACKING_URI=... python benchmarks/load_test_serving.py --seconds 30 --swap-to 3 --swap-after 10

Queries come from the bundled traffic simulator (seed 2029). Each client is a thread with its own keep-alive
`httpx.Client`; with `$MANGADISTILL_API_KEY` set, requests carry it. Prints one JSON object: requests, errors
(non-200 answers or transport failures, by kind), throughput, client-side latency p50/p95/p99 in ms, the
versions that answered and, with `--swap-to`, the swap: when the alias moved, when the new version first
answered, and the requests, errors and p95 in between (the window in which the server loads the new version
beside the old one).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

API_KEY_ENV = "MANGADISTILL_API_KEY"


@dataclass(frozen=True)
class Answer:
    started_s: float  # since the load test started
    latency_ms: float
    status: str  # "200", "503", ... or the transport error's name
    version: str | None


@dataclass(frozen=True)
class Swap:
    """`action` (e.g. moving the alias) runs `after_s` into the load; `version` is the one it should bring."""

    after_s: float
    version: str
    action: Callable[[], None]


def query_texts() -> list[str]:
    from mangadistill.data.synthetic import generate_intent_dataset

    return [t for t in generate_intent_dataset(500, 2029)["text"] if t.strip()]


def run_load(url: str, seconds: float, concurrency: int, texts: Sequence[str], *, headers: dict | None = None,
             max_requests: int = 100_000, swap: Swap | None = None) -> tuple[list[Answer], float | None, float]:
    """`concurrency` threads send one text per request until `seconds` pass or `max_requests` were sent.
    Returns the answers, when `swap.action` ran (s since start, None without a swap) and the elapsed time."""
    answers: list[Answer] = []
    budget = itertools.count()
    started = time.perf_counter()
    stop_at = started + seconds

    def client(offset: int) -> None:
        mine: list[Answer] = []
        try:
            with httpx.Client(base_url=url, timeout=30.0, headers=headers) as http:
                for i in itertools.count(offset):
                    if time.perf_counter() >= stop_at or next(budget) >= max_requests:
                        break
                    sent = time.perf_counter()
                    try:
                        response = http.post("/predict", json={"text": texts[i % len(texts)]})
                        status = str(response.status_code)
                        version = response.json()["model_version"] if status == "200" else None
                    except (httpx.HTTPError, ValueError, KeyError) as exc:  # transport error; a 200 without a version
                        status, version = type(exc).__name__, None
                    mine.append(Answer(sent - started, (time.perf_counter() - sent) * 1e3, status, version))
        finally:
            answers.extend(mine)  # list.extend is atomic under the GIL

    threads = [threading.Thread(target=client, args=(k * 61,), name=f"load-{k}") for k in range(concurrency)]
    for thread in threads:
        thread.start()
    moved_at = None
    if swap is not None:
        time.sleep(max(0.0, started + swap.after_s - time.perf_counter()))
        moved_at = time.perf_counter() - started
        swap.action()
    for thread in threads:
        thread.join()
    return sorted(answers, key=lambda a: a.started_s), moved_at, time.perf_counter() - started


def _latency(answers: list[Answer]) -> dict[str, float | None]:
    ok = np.asarray([a.latency_ms for a in answers if a.status == "200"])
    if ok.size == 0:
        return {"latency_p50_ms": None, "latency_p95_ms": None, "latency_p99_ms": None}
    return {f"latency_p{q}_ms": round(float(np.percentile(ok, q)), 1) for q in (50, 95, 99)}


def summarize(answers: list[Answer], elapsed: float, concurrency: int, url: str = "",
              swap: Swap | None = None, moved_at: float | None = None) -> dict:
    """The report: totals over the whole run and, with a swap, over the window from the move to the first
    answer of the new version (requests started in it)."""
    errors = [a.status for a in answers if a.status != "200"]
    report = {"url": url, "seconds": round(elapsed, 2), "concurrency": concurrency, "requests": len(answers),
              "ok": len(answers) - len(errors), "errors": len(errors), "error_kinds": sorted(set(errors)),
              "throughput_rps": round((len(answers) - len(errors)) / elapsed, 1), **_latency(answers),
              "model_versions": sorted({a.version for a in answers if a.version is not None})}
    if swap is not None and moved_at is not None:
        first_new = next((a.started_s for a in answers if a.version == swap.version and a.started_s >= moved_at), None)
        window = [a for a in answers if moved_at <= a.started_s <= (first_new if first_new is not None else elapsed)]
        report["swap"] = {"to_version": swap.version, "moved_at_s": round(moved_at, 2),
                          "first_answer_from_new_version_at_s": None if first_new is None else round(first_new, 2),
                          "swap_seconds": None if first_new is None else round(first_new - moved_at, 2),
                          "requests": len(window), "errors": sum(a.status != "200" for a in window),
                          **_latency(window),
                          "old_version_answers_after_move": sum(a.version not in (None, swap.version)
                                                                for a in answers if a.started_s >= moved_at)}
    return report


def load_test(url: str, seconds: float, concurrency: int, swap: Swap | None = None,
              headers: dict | None = None) -> dict:
    answers, moved_at, elapsed = run_load(url, seconds, concurrency, query_texts(), headers=headers, swap=swap)
    return summarize(answers, elapsed, concurrency, url, swap, moved_at)


def _move_alias(model: str, version: str) -> Callable[[], None]:
    def move() -> None:
        from mlflow.tracking import MlflowClient

        from pipelines.stack import mlflow_tracking_uri

        MlflowClient(mlflow_tracking_uri()).set_registered_model_alias(model, "production", version)

    return move


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--swap-to", metavar="VERSION",
                        help="move the production alias to this version during the load")
    parser.add_argument("--swap-after", type=float, default=10.0, help="seconds into the load to move it (default 10)")
    parser.add_argument("--model", default="mangaassist-intent", help="registered model whose alias --swap-to moves")
    args = parser.parse_args()
    swap = Swap(args.swap_after, args.swap_to, _move_alias(args.model, args.swap_to)) if args.swap_to else None
    key = os.environ.get(API_KEY_ENV)
    report = load_test(args.url, args.seconds, args.concurrency, swap,
                       headers={"authorization": f"Bearer {key}"} if key else None)
    print(json.dumps(report))
    return 0 if report["errors"] == 0 and report["ok"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
