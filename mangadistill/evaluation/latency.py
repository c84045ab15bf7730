"""Serving speed of a classifier on this machine: warm single-query latency, batch throughput, cold start.

Runbook 4.2, 6.10 and 13.3. Every measurement runs after untimed warm-up calls, cycling through the
same query list, so variants timed one after another in one process see identical inputs.

Each timed call records two clocks: its wall time, and the CPU time of the calling thread
(`time.thread_time`). With one thread per query (the serving default: onnxruntime and torch then compute
on the calling thread) the CPU time is the call's *service time*: what it costs on a core of its own.
Another busy process on the machine stretches the wall time (the call waits for a core) but hardly the
service time, so a gate on the service-time p95 gives the same answer on a quiet and on a loaded
machine; the wall-time figures and the share of wall time the calls actually ran (`on_cpu_share`) are
kept beside it, with the machine's load average, so a reader sees how busy the machine was.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def time_single_queries(
    predict_one: Callable[[str], object], queries: Sequence[str], n_timed: int, n_warmup: int
) -> np.ndarray:
    """Milliseconds of `n_timed` single-query calls (after `n_warmup` untimed ones), shape (n_timed,)."""
    return time_interleaved({"model": predict_one}, queries, n_timed, n_warmup)["model"]


@dataclass(frozen=True)
class CallTimings:
    """Per-call milliseconds of one predictor: wall clock and the calling thread's CPU time, shape (n,)."""

    wall_ms: np.ndarray
    cpu_ms: np.ndarray


def time_interleaved(
    predictors: dict[str, Callable[[str], object]], queries: Sequence[str], n_timed: int, n_warmup: int,
    block: int = 50,
) -> dict[str, np.ndarray]:
    """Wall milliseconds per single-query call of several predictors (see `measure_interleaved`)."""
    return {name: t.wall_ms for name, t in measure_interleaved(predictors, queries, n_timed, n_warmup, block).items()}


def measure_interleaved(
    predictors: dict[str, Callable[[str], object]], queries: Sequence[str], n_timed: int, n_warmup: int,
    block: int = 50,
) -> dict[str, CallTimings]:
    """Wall and thread-CPU milliseconds per single-query call of several predictors, timed in alternating
    blocks on the same queries.

    Each predictor answers `block` queries in turn (after a few untimed calls to re-warm its caches and
    thread pool), then the next one does, until each has `n_timed` timings. A slow spell of the machine
    (another process, a noisy neighbour) is thus spread over all predictors, while within a block each
    runs as a dedicated server would, with its own weights in cache. The garbage collector is paused
    while timing, as `timeit` does.
    """
    if not queries:
        raise ValueError("latency needs at least one query")
    for i in range(n_warmup):
        for predict_one in predictors.values():
            predict_one(queries[i % len(queries)])
    wall = {name: np.empty(n_timed) for name in predictors}
    cpu = {name: np.empty(n_timed) for name in predictors}
    rewarm = min(5, n_warmup) if len(predictors) > 1 else 0
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for start in range(0, n_timed, block):
            for name, predict_one in predictors.items():
                for i in range(rewarm):
                    predict_one(queries[(start + i) % len(queries)])
                for i in range(start, min(start + block, n_timed)):
                    query = queries[i % len(queries)]
                    began, began_cpu = time.perf_counter(), time.thread_time()
                    predict_one(query)
                    cpu[name][i] = (time.thread_time() - began_cpu) * 1e3
                    wall[name][i] = (time.perf_counter() - began) * 1e3
    finally:
        if was_enabled:
            gc.enable()
    return {name: CallTimings(wall[name], cpu[name]) for name in predictors}


def latency_summary(timings_ms: np.ndarray) -> dict[str, float]:
    """p50/p95/p99 and mean of per-call milliseconds."""
    return {
        "latency_p50_ms": float(np.percentile(timings_ms, 50)),
        "latency_p95_ms": float(np.percentile(timings_ms, 95)),
        "latency_p99_ms": float(np.percentile(timings_ms, 99)),
        "latency_mean_ms": float(np.mean(timings_ms)),
    }


def service_summary(timings: CallTimings, threads: int | None) -> dict[str, float]:
    """`latency_summary` of the wall times, plus the service time of a call (module docstring):
    ``service_p50_ms``/``service_p95_ms`` from the thread's CPU time with one thread per query; with more
    (or the runtime default), worker threads' time is not the caller's, so they fall back to the wall
    times. ``on_cpu_share``: the calls' CPU time over their wall time (near 1 on a quiet machine, one thread).
    """
    single = threads == 1
    service = timings.cpu_ms if single else timings.wall_ms
    return {
        **latency_summary(timings.wall_ms),
        "service_p50_ms": float(np.percentile(service, 50)),
        "service_p95_ms": float(np.percentile(service, 95)),
        "on_cpu_share": float(timings.cpu_ms.sum() / max(timings.wall_ms.sum(), 1e-9)),
    }


def machine_load() -> dict[str, float]:
    """The 1-minute load average and the core count, recorded beside every latency measurement."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # not every platform has it
        load = float("nan")
    return {"load_avg_1m": float(load), "cpu_count": float(os.cpu_count() or 1)}


def measure_throughput(
    predict_batch: Callable[[list[str]], object], queries: Sequence[str], batch_size: int, n_batches: int
) -> float:
    """Queries per second predicting `n_batches` batches of `batch_size` queries (one untimed batch first)."""
    if not queries:
        raise ValueError("throughput needs at least one query")
    batches = [[queries[(b * batch_size + i) % len(queries)] for i in range(batch_size)] for b in range(n_batches)]
    predict_batch(batches[0])
    start = time.perf_counter()
    for batch in batches:
        predict_batch(batch)
    return batch_size * n_batches / (time.perf_counter() - start)


_COLD_START = """
import json, sys, time
from mangadistill.export.onnx import OnnxClassifier
OnnxClassifier(sys.argv[1], num_threads=int(sys.argv[2]) if sys.argv[2] != "0" else None).predict([sys.argv[3]])
print(json.dumps({"first_prediction_at": time.time(), "torch_imported": "torch" in sys.modules}))
"""


def measure_cold_start_ms(model_dir: str | Path, query: str, runs: int, num_threads: int | None = None,
                          cwd: str | Path | None = None) -> list[float]:
    """Milliseconds from spawning a fresh Python process to its first prediction with an ONNX folder.

    The child loads only onnxruntime and `tokenizers` (`OnnxClassifier`), as a serverless function
    would; a child that imported torch would make the measurement meaningless, so it is an error.
    """
    package_root = Path(__file__).resolve().parents[2]
    timings = []
    for _ in range(runs):
        started = time.time()
        result = subprocess.run(
            [sys.executable, "-c", _COLD_START, str(model_dir), str(num_threads or 0), query],
            capture_output=True, text=True, timeout=300, cwd=cwd or package_root, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"cold-start process failed: {result.stderr.strip().splitlines()[-1:]}")
        payload = json.loads(result.stdout.strip().splitlines()[-1])
        if payload["torch_imported"]:
            raise RuntimeError("the ONNX serving path imported torch; cold start would not be representative")
        timings.append((payload["first_prediction_at"] - started) * 1e3)
    return timings


def torch_single_query(model, tokenizer, max_length: int) -> Callable[[str], int]:
    """A predict-one-query function for a PyTorch classifier (tokenise, forward, argmax), as served."""
    import torch

    @torch.inference_mode()
    def predict_one(text: str) -> int:
        inputs = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        return int(model(**inputs).logits.argmax(-1))

    return predict_one


def torch_batch(model, tokenizer, max_length: int) -> Callable[[list[str]], object]:
    """A predict-a-batch function for a PyTorch classifier (dynamic padding), as served."""
    import torch

    @torch.inference_mode()
    def predict_batch(texts: list[str]):
        inputs = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        return model(**inputs).logits.argmax(-1)

    return predict_batch
