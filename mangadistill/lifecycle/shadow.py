"""Shadow evaluation (runbook 15.2, 11.4): replay traffic through production and staging, one query at a time.

Each query goes to both models on its own, as served, so the latencies are single-query latencies
measured in one process on the same inputs. What "agreeing" means is the family's business
(`Family.compare`); the latency comparison is the same for every family.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mangadistill.evaluation.latency import latency_summary
from mangadistill.families.base import Answer

Predict = Callable[[list[str]], list[Answer]]


@dataclass(frozen=True)
class Replay:
    """One model's answers to the replayed log, in order, and the milliseconds each query took (n,)."""

    answers: list[Answer]
    latency_ms: np.ndarray

    def column(self, key: str) -> list:
        """One field of every answer, e.g. ``replay.column("intent")``."""
        return [answer[key] for answer in self.answers]


def replay(predict: Predict, texts: Sequence[str], warmup: int = 0) -> Replay:
    """Predict each text on its own (as a request would be), timing every call after `warmup` untimed ones."""
    for i in range(min(warmup, len(texts))):
        predict([texts[i]])
    answers, timings = [], np.empty(len(texts))
    for i, text in enumerate(texts):
        start = time.perf_counter()
        answer = predict([text])
        timings[i] = (time.perf_counter() - start) * 1e3
        answers.append(answer[0])
    return Replay(answers, timings)


def latency_metrics(production: Replay, staging: Replay) -> dict[str, float]:
    """``production_p95_latency_ms``, ``staging_p95_latency_ms`` and their ratio (staging / production)."""
    metrics = {f"{role}_p95_latency_ms": latency_summary(result.latency_ms)["latency_p95_ms"]
               for role, result in (("production", production), ("staging", staging))}
    metrics["p95_latency_ratio"] = metrics["staging_p95_latency_ms"] / metrics["production_p95_latency_ms"]
    return metrics
