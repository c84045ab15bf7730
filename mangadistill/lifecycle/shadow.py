"""Shadow evaluation (runbook 15.2, 11.4): replay traffic through production and staging, one query at a time.

Each query goes to both models on its own, as served, so the latencies are single-query latencies
measured in one process on the same inputs. Each call's CPU time on the calling thread is kept too: for a
version served with one thread per query it is the call's service time, which another busy process on
the machine hardly moves (`mangadistill.evaluation.latency`), so latency gates read it. What "agreeing"
means is the family's business (`Family.compare`); the latency comparison is the same for every family.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mangadistill.evaluation.latency import CallTimings, service_summary
from mangadistill.families.base import Answer

Predict = Callable[[list[str]], list[Answer]]


@dataclass(frozen=True)
class Replay:
    """One model's answers to the replayed log, in order, and the milliseconds each query took (n,): wall
    clock and the calling thread's CPU time."""

    answers: list[Answer]
    latency_ms: np.ndarray
    cpu_ms: np.ndarray | None = None

    def column(self, key: str) -> list:
        """One field of every answer, e.g. ``replay.column("intent")``."""
        return [answer[key] for answer in self.answers]


def replay(predict: Predict, texts: Sequence[str], warmup: int = 0) -> Replay:
    """Predict each text on its own (as a request would be), timing every call after `warmup` untimed ones."""
    for i in range(min(warmup, len(texts))):
        predict([texts[i]])
    answers, timings, cpu = [], np.empty(len(texts)), np.empty(len(texts))
    for i, text in enumerate(texts):
        start, start_cpu = time.perf_counter(), time.thread_time()
        answer = predict([text])
        cpu[i] = (time.thread_time() - start_cpu) * 1e3
        timings[i] = (time.perf_counter() - start) * 1e3
        answers.append(answer[0])
    return Replay(answers, timings, cpu)


def latency_metrics(production: Replay, staging: Replay, threads: tuple[int | None, int | None] = (None, None)
                    ) -> dict[str, float]:
    """``production_p95_latency_ms``, ``staging_p95_latency_ms`` and their ratio (staging / production); the
    same on service times (``*_p95_service_ms``, ``p95_service_ratio``) given each version's threads per query."""
    metrics: dict[str, float] = {}
    for (role, result), n_threads in zip((("production", production), ("staging", staging)), threads, strict=True):
        cpu = result.latency_ms if result.cpu_ms is None else result.cpu_ms
        summary = service_summary(CallTimings(result.latency_ms, cpu), n_threads)
        metrics[f"{role}_p95_latency_ms"] = summary["latency_p95_ms"]
        metrics[f"{role}_p95_service_ms"] = summary["service_p95_ms"]
    metrics["p95_latency_ratio"] = metrics["staging_p95_latency_ms"] / metrics["production_p95_latency_ms"]
    metrics["p95_service_ratio"] = metrics["staging_p95_service_ms"] / metrics["production_p95_service_ms"]
    return metrics
