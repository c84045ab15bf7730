"""Serving cost from measured latency (runbook 13.3 serverless CPU, 18.3 cost reduction)."""

from __future__ import annotations

import numpy as np

from mangadistill.config import CostConfig


def cost_per_million_requests(timings_ms: np.ndarray, config: CostConfig) -> float:
    """Price of one million requests whose durations are distributed like `timings_ms`.

    Each request is billed ``ceil(duration / granularity) * granularity`` milliseconds at
    ``memory_mb / 1024`` GB, plus the per-request fee::

        cost = 1e6 * mean(billed_s) * memory_gb * price_per_gb_second + price_per_million_requests
    """
    timings_ms = np.asarray(timings_ms, dtype=float)
    if timings_ms.size == 0:
        raise ValueError("cost needs at least one measured request duration")
    billed_s = np.ceil(timings_ms / config.billing_granularity_ms) * config.billing_granularity_ms / 1e3
    memory_gb = config.memory_mb / 1024
    return float(1e6 * billed_s.mean() * memory_gb * config.price_per_gb_second + config.price_per_million_requests)


def cost_reduction(teacher_cost: float, student_cost: float) -> float:
    """(teacher cost - student cost) / teacher cost, runbook 18.3; e.g. 12.4 -> 4.8 gives 0.613."""
    if teacher_cost <= 0:
        raise ValueError(f"teacher cost must be positive to compare against, got {teacher_cost}")
    return (teacher_cost - student_cost) / teacher_cost
