"""The `responder` family: distilled answer models (`mangaassist-responder`) on the shared life cycle.

What differs from the intent classifier, and nothing else:

- gates: runbook 7.7 as data (teacher preference match, win rate vs the base student, catalog hallucination
  rate, refusal precision, cost reduction) plus the 15.1 checklist (rollback target, observability);
- shadow (15.2): both versions answer the replayed prompts; compared on answer category (answer / refuse /
  escalate), refusal and escalation rates, and the staging model's catalog hallucination rate; the
  disagreement bucket is every prompt where the two take different actions;
- rollback triggers (15.3): hallucination rate +1.0 point, refusal precision -2.0 points, p95 +20%;
- traffic labels: an expected action (``answer``, ``refuse``, ``escalate``) or an intent of the intent
  taxonomy (``out_of_scope`` -> refuse, ``escalation`` -> escalate, any other -> answer), so the intent
  traffic simulator and a user's labelled log both work;
- bootstrap: the reference teacher (no weights) becomes the first production model, the way the
  intent family's teacher does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from mangadistill.config.base import StrictModel
from mangadistill.config.lifecycle import GateSpec, TriggerSpec
from mangadistill.families.base import Family, FetchArtifact
from mangadistill.lifecycle.record import BASELINE, STUDENT, Provenance, VersionRecord

#: Benchmark metrics a registered responder carries (what gates read and triggers compare against).
BENCHMARK_KEYS = ("rubric", "factuality", "relevance", "policy", "format", "conciseness", "hallucination_rate",
                  "refusal_precision", "refusal_recall", "escalation_precision", "escalation_recall",
                  "teacher_preference_match", "win_rate_vs_base", "latency_p50_ms", "latency_p95_ms",
                  "tokens_per_s", "cost_per_1k_usd", "cost_reduction")

_ACTIONS = ("answer", "refuse", "escalate")
_INTENT_ACTIONS = {"out_of_scope": "refuse", "escalation": "escalate"}


class ResponderOptions(StrictModel):
    """Responder settings of a promote/monitor config's `options:` block."""

    context_k: int = Field(3, ge=0, le=10, description="Documents retrieved into each replayed prompt.")
    max_new_tokens: int = Field(96, ge=8, le=2048, description="Longest answer generated per replayed prompt.")


def expected_action(label: str) -> str | None:
    """A traffic label as the action a careful agent takes; None for an unlabelled row."""
    if not label:
        return None
    return label if label in _ACTIONS else _INTENT_ACTIONS.get(label, "answer")


def action_quality(actions: Sequence[str], hallucinated: Sequence[bool], labels: Sequence[str]) -> dict[str, float]:
    """Hallucination rate over all answers; refusal/escalation precision and recall over labelled rows."""
    from mangadistill.response.rubric import action_precision_recall

    metrics = {"hallucination_rate": float(np.mean(hallucinated)) if len(hallucinated) else float("nan")}
    expected = [expected_action(label) for label in labels]
    labelled = [(a, e) for a, e in zip(actions, expected, strict=True) if e is not None]
    if labelled:
        predicted, truth = zip(*labelled, strict=True)
        for action in ("refuse", "escalate"):
            precision, recall = action_precision_recall(list(predicted), list(truth), action)
            prefix = "refusal" if action == "refuse" else "escalation"
            metrics[f"{prefix}_precision"], metrics[f"{prefix}_recall"] = precision, recall
    return metrics


def _rates(actions: Sequence[str]) -> dict[str, float]:
    n = max(len(actions), 1)
    return {"refusal_rate": sum(a == "refuse" for a in actions) / n,
            "escalation_rate": sum(a == "escalate" for a in actions) / n}


class ResponderFamily(Family):
    name = "responder"
    model_name = "mangaassist-responder"
    description = "distilled answer models: rubric, hallucination and refusal gates (runbook 7.7)"
    options_model = ResponderOptions
    monitored_metrics = ("hallucination_rate", "refusal_precision", "latency_p95_ms")

    # --------------------------------------------------------------------------------- defaults
    def default_offline_gates(self) -> dict[str, GateSpec]:
        """Runbook 7.7 and the 15.1 checklist. No latency SLO is given for answers; set one to gate on it."""
        return {
            "teacher_preference_match": GateSpec(category="quality", metric="teacher_preference_match", min=0.85),
            "win_rate_vs_base": GateSpec(category="quality", metric="win_rate_vs_base", min=0.65),
            "hallucination_rate": GateSpec(category="safety", metric="hallucination_rate", max=0.04),
            "refusal_precision": GateSpec(category="safety", metric="refusal_precision", min=0.94),
            "latency_p95": GateSpec(category="latency", metric="latency_p95_ms", max=10_000.0, enabled=False),
            "cost_reduction": GateSpec(category="cost", metric="cost_reduction", min=0.5),
            "rollback_target": GateSpec(category="rollback", metric="rollback_target_available", min=1.0),
            "observability": GateSpec(category="observability", metric="monitoring_baseline_complete", min=1.0),
        }

    def default_shadow_gates(self) -> dict[str, GateSpec]:
        """Runbook 15.2: answer category, refusal rate and escalation rate against production."""
        return {
            "action_agreement": GateSpec(category="shadow", metric="action_agreement", min=0.85),
            "refusal_rate_shift": GateSpec(category="shadow", metric="refusal_rate_abs_delta", max=0.05),
            "escalation_rate_shift": GateSpec(category="shadow", metric="escalation_rate_abs_delta", max=0.05),
            "staging_hallucination_rate": GateSpec(category="shadow", metric="staging_hallucination_rate", max=0.04),
        }

    def default_triggers(self) -> dict[str, TriggerSpec]:
        """Runbook 15.3."""
        return {
            "hallucination_rate": TriggerSpec(benchmark="hallucination_rate", max_rise_points=1.0),
            "refusal_precision": TriggerSpec(benchmark="refusal_precision", max_drop_points=2.0),
            "latency_p95_ms": TriggerSpec(benchmark="latency_p95_ms", max_rise_fraction=0.20),
        }

    # ------------------------------------------------------------------------------ behaviour
    def load(self, name: str, version: str, record: VersionRecord, num_threads: int | None = None):
        from mangadistill.response.pyfunc import download_artifacts, responder_from_artifacts

        return responder_from_artifacts(download_artifacts(name, version), threads=num_threads)

    def compare(self, production, staging, traffic, options) -> tuple[dict[str, float], pd.DataFrame]:
        rows = traffic.rows
        produced, shadowed = production.column("action"), staging.column("action")
        agree = np.asarray(produced) == np.asarray(shadowed)
        metrics: dict[str, float] = {"sample_size": float(len(rows)), "action_agreement": float(agree.mean()),
                                     "disagreements": float((~agree).sum())}
        labels = rows["label"].tolist()
        for role, replayed in (("production", production), ("staging", staging)):
            actions = replayed.column("action")
            metrics.update({f"{role}_{k}": v for k, v in _rates(actions).items()})
            metrics.update({f"{role}_{k}": v for k, v in
                            action_quality(actions, replayed.column("hallucinated"), labels).items()})
        for key in ("refusal_rate", "escalation_rate"):
            metrics[f"{key}_abs_delta"] = abs(metrics[f"staging_{key}"] - metrics[f"production_{key}"])
        bucket = pd.DataFrame({
            "text": rows["text"], "label": rows["label"],
            "production_action": produced, "production_answer": production.column("answer"),
            "staging_action": shadowed, "staging_answer": staging.column("answer"),
        })[~agree].reset_index(drop=True)
        return metrics, bucket

    def observe(self, replay, traffic, options) -> dict[str, float]:
        return action_quality(replay.column("action"), replay.column("hallucinated"), traffic.rows["label"].tolist())

    def shadow_event(self, metrics: dict[str, float], *, model_name: str, staging_version: str,
                     production_version: str, production_role: str) -> dict[str, Any]:
        event = super().shadow_event(metrics, model_name=model_name, staging_version=staging_version,
                                     production_version=production_version, production_role=production_role)
        event.update({
            "student_accept_rate": round(metrics["action_agreement"], 4),
            "student_hallucination_rate": round(metrics["staging_hallucination_rate"], 4),
            f"{production_role}_hallucination_rate": round(metrics["production_hallucination_rate"], 4),
            "student_refusal_rate": round(metrics["staging_refusal_rate"], 4),
            f"{production_role}_refusal_rate": round(metrics["production_refusal_rate"], 4),
            "student_escalation_rate": round(metrics["staging_escalation_rate"], 4),
            f"{production_role}_escalation_rate": round(metrics["production_escalation_rate"], 4),
            "disagreements": int(metrics["disagreements"]),
        })
        return event

    def bootstrap(self, name: str, candidate: VersionRecord, fetch: FetchArtifact) -> str | None:
        """Register the reference teacher (no weights) as the first production model, with the teacher's
        numbers from the candidate's evaluation as its benchmark."""
        run = candidate.provenance.pipeline_run
        if not run:
            return None
        evaluation, evaluation_id = fetch(run, "evaluate_responders", "response_evaluation")
        record = reference_record(run, evaluation_id, evaluation)
        return register_reference(name, record).version


# ---------------------------------------------------------------------------------------------------------
# Records and registration
# ---------------------------------------------------------------------------------------------------------


#: The 7.7 gates a distillation run can check by itself (rollback target and observability need the registry).
RUN_GATES = ("teacher_preference_match", "win_rate_vs_base", "hallucination_rate", "refusal_precision", "cost_reduction")


def run_gates(student_metrics: dict[str, Any]):
    """The distilled student's gate-set numbers against the family's 7.7 gates a run can check (`RUN_GATES`)."""
    from mangadistill.lifecycle.gates import evaluate_gates

    gates = {name: spec for name, spec in ResponderFamily().default_offline_gates().items() if name in RUN_GATES}
    return evaluate_gates("offline", gates, student_metrics)


def benchmark_of(metrics: dict[str, Any], **extra: float) -> dict[str, float]:
    numbers = {key: float(metrics[key]) for key in BENCHMARK_KEYS
               if isinstance(metrics.get(key), (int, float)) and np.isfinite(metrics[key])}
    return {**numbers, **{key: float(value) for key, value in extra.items()}}


def student_record(run_name: str, source_id: str, evaluation: dict[str, Any], teacher: str,
                   serving_threads: int, served_variant: str = "pytorch_fp32") -> VersionRecord:
    """The record of a distilled responder (benchmark: the served variant's gate-set numbers)."""
    return VersionRecord(family=ResponderFamily.name, role=STUDENT, served_variant=served_variant,
                         serving_threads=serving_threads,
                         provenance=Provenance(pipeline_run=run_name, source_id=source_id, teacher=teacher,
                                               artifacts={"served_responder": source_id.split(":")[0]}),
                         benchmark=benchmark_of(evaluation["gate"]["student"]))


def reference_record(run_name: str, evaluation_id: str, evaluation: dict[str, Any]) -> VersionRecord:
    """The record of the bootstrap reference teacher (its gate-set numbers as the benchmark)."""
    return VersionRecord(family=ResponderFamily.name, role=BASELINE, served_variant="reference",
                         provenance=Provenance(pipeline_run=run_name, source_id=f"{evaluation_id}:reference",
                                               artifacts={"response_evaluation": evaluation_id}),
                         benchmark=benchmark_of(evaluation["gate"]["teacher"], cost_reduction=0.0))


def register_reference(name: str, record: VersionRecord):
    """Register the reference teacher as a version of `name` (in a run of its own when none is active)."""
    import json

    import mlflow

    from mangadistill.lifecycle.registration import register_version
    from mangadistill.response.pyfunc import REFERENCE_ARTIFACT, log_responder

    folder = Path(tempfile.mkdtemp(prefix="reference-teacher-"))
    spec = folder / "reference_teacher.json"
    spec.write_text(json.dumps({"kind": "reference_teacher"}), encoding="utf-8")
    with mlflow.start_run(nested=mlflow.active_run() is not None, run_name="register-reference-teacher"):
        return register_version(name, record, lambda: log_responder({REFERENCE_ARTIFACT: str(spec)}, name),
                                description="The reference teacher (catalog-grounded rules), first production model.")
