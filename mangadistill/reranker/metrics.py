"""Ranking metrics (runbook 18.2): NDCG@k, MRR@k, top-3 swap rate, top-3 agreement.

Every function takes one ranked list: the graded labels (0-3) of the candidates in the order a model ranks
them, best first. `ranking_metrics` averages over queries, leaving out queries with no relevant candidate
(their ideal DCG is 0: no ranking can be judged on them) and saying how many it scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["dcg_at_k", "mrr_at_k", "ndcg_at_k", "rank", "ranking_metrics", "top3_swapped", "top_k_agreement"]


def dcg_at_k(labels: Sequence[float], k: int) -> float:
    """``sum_{i=1..k} (2^rel_i - 1) / log2(i + 1)`` over the first `k` labels."""
    gains = np.power(2.0, np.asarray(labels, dtype=float)[:k]) - 1.0
    return float(np.sum(gains / np.log2(np.arange(2, gains.size + 2))))


def ndcg_at_k(labels: Sequence[float], k: int = 10) -> float:
    """DCG@k of the ranked labels over DCG@k of the same labels sorted best first; NaN when nothing is relevant."""
    ideal = dcg_at_k(sorted(labels, reverse=True), k)
    return dcg_at_k(labels, k) / ideal if ideal > 0 else float("nan")


def mrr_at_k(labels: Sequence[float], k: int = 10, relevant: float = 1.0) -> float:
    """1 / rank of the first candidate with label >= `relevant` within the top `k`; 0 when there is none."""
    for position, label in enumerate(list(labels)[:k], start=1):
        if label >= relevant:
            return 1.0 / position
    return 0.0


def top3_swapped(labels: Sequence[float]) -> bool:
    """True when the top 3 hold a less relevant candidate above a more relevant one (a swap within the top 3)."""
    top = list(labels)[:3]
    return any(top[i] < top[j] for i in range(len(top)) for j in range(i + 1, len(top)))


def top_k_agreement(first: Sequence[str], second: Sequence[str], k: int = 3) -> bool:
    """Whether two rankings put the same candidates, in the same order, in their top `k`."""
    return list(first)[:k] == list(second)[:k]


def rank(scores: Sequence[float]) -> np.ndarray:
    """Candidate indices, best score first (ties keep the candidates' order)."""
    return np.argsort(-np.asarray(scores, dtype=float), kind="stable")


def ranking_metrics(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[float]], k: int = 10) -> dict[str, float]:
    """Mean NDCG@k, MRR@k and top-3 swap rate of ranking each query's candidates by `scores`.

    Queries whose candidates are all irrelevant are not scored (``queries_scored`` says how many were).
    """
    ndcg, mrr, swapped = [], [], []
    for query_scores, query_labels in zip(scores, labels, strict=True):
        ranked = np.asarray(query_labels, dtype=float)[rank(query_scores)]
        value = ndcg_at_k(ranked, k)
        if np.isnan(value):
            continue
        ndcg.append(value)
        mrr.append(mrr_at_k(ranked, k))
        swapped.append(top3_swapped(ranked))
    if not ndcg:
        return {f"ndcg_at_{k}": float("nan"), f"mrr_at_{k}": float("nan"), "top3_swap_rate": float("nan"),
                "queries_scored": 0.0}
    return {f"ndcg_at_{k}": float(np.mean(ndcg)), f"mrr_at_{k}": float(np.mean(mrr)),
            "top3_swap_rate": float(np.mean(swapped)), "queries_scored": float(len(ndcg))}
