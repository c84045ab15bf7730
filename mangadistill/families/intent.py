"""The intent-classifier family: `mangaassist-intent` versions, runbook 6.9 / 15.1 gates, 15.3 triggers.

Answers are ``{"intent": str, "confidence": float}``. Two versions agree on a query when they give the
same intent; refusal and escalation rates come from the label roles in the family's options.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from mangadistill.config.base import StrictModel
from mangadistill.config.lifecycle import GateSpec, TriggerSpec
from mangadistill.evaluation.metrics import classification_metrics
from mangadistill.families.base import Answer, Family, FetchArtifact
from mangadistill.lifecycle.record import STUDENT, TEACHER, Provenance, VersionRecord
from mangadistill.lifecycle.shadow import Replay
from mangadistill.traffic import TrafficLog

#: Benchmark metrics registered with an intent version (the served graph's gate-set and serving numbers).
BENCHMARK_KEYS = ("accuracy", "macro_f1", "rare_class_recall", "refusal_precision", "refusal_recall",
                  "in_scope_accuracy", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "service_p95_ms",
                  "cold_start_ms",
                  "size_mb", "cost_per_million_usd")


class IntentOptions(StrictModel):
    """Which intents count as refusals and as escalations (rare classes) when traffic is scored."""

    refusal_label: str = Field("out_of_scope", min_length=1, description="Intent answered with a refusal.")
    escalation_labels: tuple[str, ...] = Field(
        ("escalation",), min_length=1, description="Rare high-risk intents handed to a human (rare-class recall)."
    )


class _ClassifierPredictor:
    """A loaded classifier version answering ``{"intent", "confidence"}`` per text."""

    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier  # mangadistill.registry.loading.VersionClassifier or PyfuncClassifier
        self.labels = getattr(classifier, "labels", None)  # None: a pyfunc that does not say its labels

    def predict(self, texts: list[str]) -> list[Answer]:
        intents, confidence = self.classifier.predict(list(texts))
        return [{"intent": str(intent), "confidence": round(float(c), 6)} for intent, c in zip(intents, confidence, strict=True)]


def quality(intents: Sequence[str], labels: Sequence[str], all_labels: Sequence[str],
            options: IntentOptions) -> dict[str, float]:
    """Accuracy, macro-F1, rare-class (escalation) recall, refusal precision/recall against logged labels."""
    index = {label: i for i, label in enumerate(all_labels)}
    y_true = np.array([index[label] for label in labels])
    y_pred = np.array([index.get(intent, -1) for intent in intents])
    rare = [index[label] for label in options.escalation_labels if label in index]
    return classification_metrics(y_true, y_pred, len(all_labels), rare, index.get(options.refusal_label))


def _rates(intents: Sequence[str], options: IntentOptions) -> dict[str, float]:
    intents = np.asarray(intents)
    return {"refusal_rate": float((intents == options.refusal_label).mean()),
            "escalation_rate": float(np.isin(intents, list(options.escalation_labels)).mean())}


def _all_labels(traffic: TrafficLog, *replays: Replay) -> list[str]:
    seen = {*traffic.rows["label"][traffic.rows["label"] != ""]}
    for result in replays:
        seen.update(result.column("intent"))
    return sorted(seen)


class IntentFamily(Family):
    name = "intent"
    model_name = "mangaassist-intent"
    description = "intent classifier (distill_intent): ONNX student vs fine-tuned encoder teacher"
    options_model = IntentOptions
    monitored_metrics = ("rare_class_recall", "refusal_precision", "latency_p95_ms")

    # --------------------------------------------------------------------------------- defaults
    def default_offline_gates(self) -> dict[str, GateSpec]:
        return {
            # runbook 6.9 classifier gates, on the gate-set numbers distill_intent registered with the version
            "accuracy": GateSpec(category="quality", metric="accuracy", min=0.89),
            "rare_class_recall": GateSpec(category="quality", metric="rare_class_recall", min=0.80),
            "refusal_precision": GateSpec(category="safety", metric="refusal_precision", min=0.94),
            # runbook 6.9's 6 ms, on the service-time p95 (one thread, CPU time of the call: machine load does not
            # move it; README "Latency gates"), and the student's p95 against the teacher's timed beside it
            "latency_p95": GateSpec(category="latency", metric="service_p95_ms", max=6.0),
            "latency_ratio": GateSpec(category="latency", metric="p95_ratio_vs_teacher", max=1 / 3),
            # a new Python process to first prediction, not a Lambda cold start: recorded, not gated
            "cold_start": GateSpec(category="latency", metric="cold_start_ms", max=150.0, enabled=False),
            # runbook 15.1 checklist
            "cost_reduction": GateSpec(category="cost", metric="cost_reduction", min=0.5),
            "rollback_target": GateSpec(category="rollback", metric="rollback_target_available", min=1.0),
            "observability": GateSpec(category="observability", metric="monitoring_baseline_complete", min=1.0),
        }

    def default_shadow_gates(self) -> dict[str, GateSpec]:
        return {
            "agreement": GateSpec(category="shadow", metric="agreement_rate", min=0.85),
            "refusal_rate_shift": GateSpec(category="shadow", metric="refusal_rate_abs_delta", max=0.02),
            "escalation_rate_shift": GateSpec(category="shadow", metric="escalation_rate_abs_delta", max=0.02),
            "staging_latency_p95": GateSpec(category="shadow", metric="staging_p95_service_ms", max=6.0),
            # needs a labelled log; with an unlabelled one the metric is missing and fails: disable it there
            "staging_refusal_precision": GateSpec(category="shadow", metric="staging_refusal_precision", min=0.94),
        }

    def default_triggers(self) -> dict[str, TriggerSpec]:
        return {
            "rare_class_recall": TriggerSpec(benchmark="rare_class_recall", max_drop_points=3.0),
            "refusal_precision": TriggerSpec(benchmark="refusal_precision", max_drop_points=2.0),
            "latency_p95_ms": TriggerSpec(benchmark="latency_p95_ms", max_rise_fraction=0.20),
        }

    # ------------------------------------------------------------------------------ behaviour
    def load(self, name: str, version: str, record: VersionRecord, num_threads: int | None = None):
        from mangadistill.registry.loading import load_version_classifier

        return _ClassifierPredictor(load_version_classifier(name, version, num_threads))

    def known_labels(self, predictor: Any) -> Sequence[str] | None:
        return None if predictor.labels is None else tuple(predictor.labels)

    def compare(self, production: Replay, staging: Replay, traffic: TrafficLog,
                options: IntentOptions) -> tuple[dict[str, float], pd.DataFrame]:
        """``agreement_rate``, per-model refusal/escalation rates and their absolute deltas; with labels,
        each model's accuracy, rare-class recall, refusal precision ... (``production_*``, ``staging_*``)."""
        rows = traffic.rows
        produced, shadowed = production.column("intent"), staging.column("intent")
        agree = np.asarray(produced) == np.asarray(shadowed)
        metrics: dict[str, float] = {"sample_size": float(len(rows)), "agreement_rate": float(agree.mean()),
                                     "disagreements": float((~agree).sum())}
        labelled = bool((rows["label"] != "").all())
        all_labels = _all_labels(traffic, production, staging)
        for role, intents in (("production", produced), ("staging", shadowed)):
            metrics.update({f"{role}_{k}": v for k, v in _rates(intents, options).items()})
            if labelled:
                metrics.update({f"{role}_{k}": v
                                for k, v in quality(intents, rows["label"].tolist(), all_labels, options).items()})
        for key in ("refusal_rate", "escalation_rate"):
            metrics[f"{key}_abs_delta"] = abs(metrics[f"staging_{key}"] - metrics[f"production_{key}"])
        bucket = pd.DataFrame({
            "text": rows["text"], "label": rows["label"],
            "production_intent": produced, "production_confidence": np.round(production.column("confidence"), 4),
            "staging_intent": shadowed, "staging_confidence": np.round(staging.column("confidence"), 4),
        })[~agree].reset_index(drop=True)
        return metrics, bucket

    def observe(self, replay: Replay, traffic: TrafficLog, options: IntentOptions) -> dict[str, float]:
        labelled = (traffic.rows["label"] != "").to_numpy()
        if not labelled.any():
            return {}
        intents = [intent for intent, keep in zip(replay.column("intent"), labelled, strict=True) if keep]
        return quality(intents, traffic.rows.loc[labelled, "label"].tolist(), _all_labels(traffic, replay), options)

    def shadow_event(self, metrics: dict[str, float], *, model_name: str, staging_version: str,
                     production_version: str, production_role: str) -> dict[str, Any]:
        """Runbook 11.4 for a classifier: ``student_accept_rate`` is the share of queries where the shadow
        (staging) model gives the production model's intent; the seed's hallucination rates have no
        classifier counterpart."""
        event = super().shadow_event(metrics, model_name=model_name, staging_version=staging_version,
                                     production_version=production_version, production_role=production_role)
        event.update({
            "student_accept_rate": round(metrics["agreement_rate"], 4),
            "student_escalation_rate": round(metrics["staging_escalation_rate"], 4),
            f"{production_role}_escalation_rate": round(metrics["production_escalation_rate"], 4),
            "student_refusal_rate": round(metrics["staging_refusal_rate"], 4),
            f"{production_role}_refusal_rate": round(metrics["production_refusal_rate"], 4),
            "disagreements": int(metrics["disagreements"]),
        })
        return event

    def bootstrap(self, name: str, candidate: VersionRecord, fetch: FetchArtifact) -> str | None:
        """Register the teacher of the candidate's `distill_intent` run and make it the first production model."""
        run = candidate.provenance.pipeline_run
        if not run:
            return None
        from mangadistill.registry.register import register_classifier

        teacher, teacher_id = fetch(run, "train_teacher", "teacher_model")
        evaluation, _ = fetch(run, "evaluate_models", "evaluation")
        serving, _ = fetch(run, "benchmark_serving", "serving_report")
        record = teacher_record(run, teacher_id, evaluation, serving)
        return register_classifier(teacher, name, record,
                                   description=f"Teacher of {run} (PyTorch), first production model.").version


def _benchmark(metrics: dict[str, Any], **extra: float) -> dict[str, float]:
    numbers = {key: float(metrics[key]) for key in BENCHMARK_KEYS if metrics.get(key) is not None}
    return {**numbers, **{key: float(value) for key, value in extra.items()}}


def student_record(run_name: str, source_id: str, evaluation: dict[str, Any], serving: dict[str, Any],
                   teacher: str | None = None) -> VersionRecord:
    """The record of a served student registered by `distill_intent` (benchmark: the served graph's numbers)."""
    served = serving["served_variant"]
    student, teacher_scores = serving["variants"][f"student_{served}"], evaluation["teacher"]
    benchmark = _benchmark(student, cost_reduction=serving["cost_reduction"],
                           p95_ratio_vs_teacher=serving.get("service_p95_ratio", serving["p95_ratio"]),
                           retention=student["accuracy"] / teacher_scores["accuracy"],
                           teacher_accuracy=teacher_scores["accuracy"],
                           fp32_student_accuracy=evaluation["student"]["accuracy"])
    return VersionRecord(family=IntentFamily.name, role=STUDENT, served_variant=served,
                         serving_threads=int(serving["serving_threads"]),
                         provenance=Provenance(pipeline_run=run_name, source_id=source_id, teacher=teacher,
                                               artifacts={"student_onnx": source_id.split(":")[0]}),
                         benchmark=benchmark)


def teacher_record(run_name: str, artifact_id: str, evaluation: dict[str, Any], serving: dict[str, Any]) -> VersionRecord:
    """The record of the bootstrap teacher (PyTorch, its gate-set and serving numbers as the benchmark)."""
    metrics = {**evaluation["teacher"], **serving["variants"]["teacher_pytorch_fp32"]}
    return VersionRecord(family=IntentFamily.name, role=TEACHER, served_variant="pytorch_fp32",
                         serving_threads=int(serving["serving_threads"]),
                         provenance=Provenance(pipeline_run=run_name, source_id=f"{artifact_id}:teacher",
                                               artifacts={"teacher_model": artifact_id}),
                         benchmark=_benchmark(metrics, cost_reduction=0.0, p95_ratio_vs_teacher=1.0))
