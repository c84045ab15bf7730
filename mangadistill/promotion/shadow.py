"""Shadow evaluation (runbook 15.2, 11.4): replay traffic through production and staging, compare.

Each query goes to both models one at a time, as served, so the latencies are single-query latencies
measured in one process on the same inputs. The comparison yields agreement, per-model refusal and
escalation rates and p95 latency (plus quality when the log is labelled), the disagreement bucket for
human review, and the `online_shadow_compare` event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mangadistill.evaluation.latency import latency_summary
from mangadistill.evaluation.metrics import classification_metrics

Predict = Callable[[list[str]], tuple[list[str], np.ndarray]]


@dataclass(frozen=True)
class ModelReplay:
    """One model's answers to the replayed log: intents (n,), confidences (n,), per-query ms (n,)."""

    intents: list[str]
    confidences: np.ndarray
    latency_ms: np.ndarray


def replay(predict: Predict, texts: Sequence[str], warmup: int = 0) -> ModelReplay:
    """Predict each text on its own (as a request would be), timing every call after `warmup` untimed ones."""
    for i in range(min(warmup, len(texts))):
        predict([texts[i]])
    intents, confidences, timings = [], np.empty(len(texts)), np.empty(len(texts))
    for i, text in enumerate(texts):
        start = time.perf_counter()
        labels, confidence = predict([text])
        timings[i] = (time.perf_counter() - start) * 1e3
        intents.append(labels[0])
        confidences[i] = float(confidence[0])
    return ModelReplay(intents, confidences, timings)


def _rates(intents: Sequence[str], refusal_label: str, escalation_labels: Sequence[str]) -> dict[str, float]:
    intents = np.asarray(intents)
    return {"refusal_rate": float((intents == refusal_label).mean()),
            "escalation_rate": float(np.isin(intents, list(escalation_labels)).mean())}


def quality(intents: Sequence[str], labels: Sequence[str], all_labels: Sequence[str], refusal_label: str,
            escalation_labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1, rare-class (escalation) recall, refusal precision/recall against logged labels."""
    index = {label: i for i, label in enumerate(all_labels)}
    y_true = np.array([index[label] for label in labels])
    y_pred = np.array([index.get(intent, -1) for intent in intents])
    rare = [index[label] for label in escalation_labels if label in index]
    return classification_metrics(y_true, y_pred, len(all_labels), rare, index.get(refusal_label))


def compare(
    production: ModelReplay,
    staging: ModelReplay,
    rows: pd.DataFrame,
    *,
    refusal_label: str,
    escalation_labels: Sequence[str],
    all_labels: Sequence[str] | None = None,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Comparison metrics and the disagreement bucket (one row per query the two models answer differently).

    Metrics: ``agreement_rate``; ``production_*`` and ``staging_*`` refusal/escalation rates and
    ``p95_latency_ms``; ``refusal_rate_abs_delta``, ``escalation_rate_abs_delta``, ``p95_latency_ratio``
    (staging / production); with labels, each model's ``accuracy``, ``rare_class_recall``,
    ``refusal_precision`` ... prefixed the same way.
    """
    agree = np.asarray(production.intents) == np.asarray(staging.intents)
    metrics: dict[str, float] = {"sample_size": float(len(rows)), "agreement_rate": float(agree.mean()),
                                 "disagreements": float((~agree).sum())}
    labelled = all_labels is not None and bool((rows["label"] != "").all())
    for role, result in (("production", production), ("staging", staging)):
        metrics.update({f"{role}_{k}": v for k, v in _rates(result.intents, refusal_label, escalation_labels).items()})
        metrics[f"{role}_p95_latency_ms"] = latency_summary(result.latency_ms)["latency_p95_ms"]
        if labelled:
            scores = quality(result.intents, rows["label"].tolist(), all_labels, refusal_label, escalation_labels)
            metrics.update({f"{role}_{k}": v for k, v in scores.items()})
    for key in ("refusal_rate", "escalation_rate"):
        metrics[f"{key}_abs_delta"] = abs(metrics[f"staging_{key}"] - metrics[f"production_{key}"])
    metrics["p95_latency_ratio"] = metrics["staging_p95_latency_ms"] / metrics["production_p95_latency_ms"]
    bucket = pd.DataFrame({
        "text": rows["text"], "label": rows["label"],
        "production_intent": production.intents, "production_confidence": production.confidences.round(4),
        "staging_intent": staging.intents, "staging_confidence": staging.confidences.round(4),
    })[~agree].reset_index(drop=True)
    return metrics, bucket


def shadow_event(metrics: dict[str, float], *, model_name: str, staging_version: str, production_version: str,
                 production_role: str) -> dict:
    """The runbook 11.4 `online_shadow_compare` event, for a classifier.

    ``student_accept_rate`` is the share of queries where the shadow (staging) model gives the
    production model's intent; the seed's hallucination rates have no classifier counterpart.
    """
    return {
        "event": "online_shadow_compare",
        "shadow_student": f"{model_name}/{staging_version}",
        f"control_{production_role}": f"{model_name}/{production_version}",
        "sample_size": int(metrics["sample_size"]),
        "student_accept_rate": round(metrics["agreement_rate"], 4),
        "student_escalation_rate": round(metrics["staging_escalation_rate"], 4),
        f"{production_role}_escalation_rate": round(metrics["production_escalation_rate"], 4),
        "student_refusal_rate": round(metrics["staging_refusal_rate"], 4),
        f"{production_role}_refusal_rate": round(metrics["production_refusal_rate"], 4),
        "student_p95_latency_ms": round(metrics["staging_p95_latency_ms"], 3),
        f"{production_role}_p95_latency_ms": round(metrics["production_p95_latency_ms"], 3),
        "disagreements": int(metrics["disagreements"]),
    }
