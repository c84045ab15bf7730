"""Warm single-query latency of a classifier on this machine (runbook 4.2, 6.10)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch


def measure_latency_ms(
    predict_one: Callable[[str], object], queries: Sequence[str], n_timed: int, n_warmup: int
) -> dict[str, float]:
    """Call `predict_one` on `n_warmup` then `n_timed` queries (cycling) and report p50/p95/p99 in ms."""
    if not queries:
        raise ValueError("latency needs at least one query")
    for i in range(n_warmup):
        predict_one(queries[i % len(queries)])
    timings = np.empty(n_timed)
    for i in range(n_timed):
        start = time.perf_counter()
        predict_one(queries[i % len(queries)])
        timings[i] = (time.perf_counter() - start) * 1e3
    return {
        "latency_p50_ms": float(np.percentile(timings, 50)),
        "latency_p95_ms": float(np.percentile(timings, 95)),
        "latency_p99_ms": float(np.percentile(timings, 99)),
    }


def torch_single_query(model, tokenizer, max_length: int) -> Callable[[str], int]:
    """A predict-one-query function for a PyTorch classifier (tokenise, forward, argmax), as served."""

    @torch.inference_mode()
    def predict_one(text: str) -> int:
        inputs = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        return int(model(**inputs).logits.argmax(-1))

    return predict_one
