#!/usr/bin/env python
"""Bounded load test of the intent service: N concurrent clients POST single queries for S seconds.

    python benchmarks/load_test_serving.py --url http://127.0.0.1:8000 --seconds 30 --concurrency 8

Queries come from the bundled traffic simulator (seed 2029). Prints one JSON object: requests, errors
(non-200 or transport failures), throughput, client-side latency p50/p95/p99 in ms, and the versions served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def _client(url: str, texts: list[str], offset: int, stop_at: float, results: list, errors: list,
                  versions: set) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        i = offset
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                response = await client.post("/predict", json={"text": texts[i % len(texts)]})
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            else:
                if response.status_code == 200:
                    results.append((time.perf_counter() - started) * 1e3)
                    versions.add(response.json()["model_version"])
                else:
                    errors.append(str(response.status_code))
            i += 1


async def load_test(url: str, seconds: float, concurrency: int) -> dict:
    from mangadistill.data.synthetic import generate_intent_dataset

    texts = [t for t in generate_intent_dataset(500, 2029)["text"] if t.strip()]
    results: list[float] = []
    errors: list[str] = []
    versions: set[str] = set()
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(_client(url, texts, k * 61, stop_at, results, errors, versions) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    latency = np.asarray(results) if results else np.asarray([float("nan")])
    return {"url": url, "seconds": round(elapsed, 2), "concurrency": concurrency,
            "requests": len(results) + len(errors), "ok": len(results), "errors": len(errors),
            "error_kinds": sorted(set(errors)),
            "throughput_rps": round(len(results) / elapsed, 1),
            "latency_p50_ms": round(float(np.percentile(latency, 50)), 2),
            "latency_p95_ms": round(float(np.percentile(latency, 95)), 2),
            "latency_p99_ms": round(float(np.percentile(latency, 99)), 2), "model_versions": sorted(versions)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    report = asyncio.run(load_test(args.url, args.seconds, args.concurrency))
    print(json.dumps(report))
    return 0 if report["errors"] == 0 and report["ok"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
