"""The `reranker` family: distilled cross-encoders (`mangaassist-reranker`) on the shared life cycle.

What differs from the other families, and nothing else:

- gates (runbook 9, 15.1): NDCG@10 retention of the teacher's and an absolute NDCG@10 floor on the gate
  set, the rerank-call p95 as a ratio to the teacher's measured in the same run (steady under machine
  load) and against an absolute budget, size, cost reduction; the rollback and observability checklist;
- answers: per query, BM25 over the version's bundled corpus picks K candidates and the model orders them
  (`mangadistill.reranker.serving.Reranker.predict`): ``{"ranking", "scores", "top_doc", "top_text"}``;
- shadow (15.2): both versions rank the replayed queries; compared by top-3 agreement (same three
  documents in the same order) and, on queries the documented relevance rules can grade
  (`mangadistill.reranker.judge`), each version's NDCG@10; the disagreement bucket is every query whose
  top 3 differ;
- rollback triggers (15.3): NDCG@10 -3 points against the approved benchmark, p95 +20%;
- bootstrap: the candidate's teacher (PyTorch) becomes the first production model, as in the intent family.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from mangadistill.config.base import StrictModel
from mangadistill.config.lifecycle import GateSpec, TriggerSpec
from mangadistill.families.base import Family, FetchArtifact
from mangadistill.lifecycle.record import STUDENT, TEACHER, Provenance, VersionRecord

#: Benchmark metrics registered with a reranker version (the served variant's gate-set and serving numbers).
BENCHMARK_KEYS = ("ndcg_at_10", "mrr_at_10", "top3_swap_rate", "ndcg_retention", "teacher_ndcg_at_10",
                  "latency_p50_ms", "latency_p95_ms", "p95_ratio_vs_teacher", "size_mb", "cost_per_million_usd",
                  "cost_reduction")


class RerankerOptions(StrictModel):
    """Reranker settings of a promote/monitor config's `options:` block."""

    agreement_k: int = Field(3, ge=1, le=20, description="Top positions two versions must agree on (shadow).")


def judged_ndcg(queries: list[str], rankings: list[list[str]], k: int = 10) -> list[float]:
    """NDCG@k of each ranking (catalog doc ids ``cat-NNN``, best first) graded by the documented rules;
    NaN where the query is unjudgeable, nothing ranked is relevant, or a document is not a catalog passage."""
    from mangadistill.data.synthetic import load_catalog
    from mangadistill.reranker.judge import RelevanceJudge
    from mangadistill.reranker.metrics import ndcg_at_k

    catalog = load_catalog()
    judge = RelevanceJudge(catalog)
    values = []
    for query, ranking in zip(queries, rankings, strict=True):
        indices = [int(d[4:]) if d.startswith("cat-") and d[4:].isdigit() else -1 for d in ranking]
        grades = None if min(indices, default=-1) < 0 or max(indices) >= len(catalog) else \
            judge.grade(query, [catalog[i] for i in indices])
        values.append(float("nan") if grades is None else ndcg_at_k(grades, k))
    return values


def _mean(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if np.isfinite(v)]
    return {"ndcg_at_10": float(np.mean(finite)) if finite else float("nan"), "judged_queries": float(len(finite))}


class RerankerFamily(Family):
    name = "reranker"
    model_name = "mangaassist-reranker"
    description = "distilled cross-encoder reranker (distill_reranker): NDCG@10 and rerank-latency gates (runbook 9)"
    options_model = RerankerOptions
    monitored_metrics = ("ndcg_at_10", "latency_p95_ms")

    # --------------------------------------------------------------------------------- defaults
    def default_offline_gates(self) -> dict[str, GateSpec]:
        return {
            "ndcg_retention": GateSpec(category="quality", metric="ndcg_retention", min=0.95),
            "ndcg_at_10": GateSpec(category="quality", metric="ndcg_at_10", min=0.70),
            # a ratio measured side by side in one run does not move with the machine's load; the absolute
            # budget is the SLO a rerank call (K=20 candidates, one thread) must meet
            "latency_p95_ratio": GateSpec(category="latency", metric="p95_ratio_vs_teacher", max=1 / 3),
            "latency_p95": GateSpec(category="latency", metric="latency_p95_ms", max=100.0),
            "size": GateSpec(category="cost", metric="size_mb", max=40.0),
            "cost_reduction": GateSpec(category="cost", metric="cost_reduction", min=0.5),
            "rollback_target": GateSpec(category="rollback", metric="rollback_target_available", min=1.0),
            "observability": GateSpec(category="observability", metric="monitoring_baseline_complete", min=1.0),
        }

    def default_shadow_gates(self) -> dict[str, GateSpec]:
        return {
            "top3_agreement": GateSpec(category="shadow", metric="top3_agreement", min=0.5),
            "ndcg_delta": GateSpec(category="shadow", metric="ndcg_delta", min=-0.05),
            "staging_latency_ratio": GateSpec(category="shadow", metric="p95_latency_ratio", max=1.0),
        }

    def default_triggers(self) -> dict[str, TriggerSpec]:
        return {
            "ndcg_at_10": TriggerSpec(benchmark="ndcg_at_10", max_drop_points=3.0),
            "latency_p95_ms": TriggerSpec(benchmark="latency_p95_ms", max_rise_fraction=0.20),
        }

    # ------------------------------------------------------------------------------ behaviour
    def load(self, name: str, version: str, record: VersionRecord, num_threads: int | None = None):
        from mangadistill.reranker.pyfunc import load_registered_reranker

        return load_registered_reranker(name, version, num_threads=num_threads)

    def compare(self, production, staging, traffic, options: RerankerOptions) -> tuple[dict[str, float], pd.DataFrame]:
        from mangadistill.reranker.metrics import top_k_agreement

        texts = traffic.rows["text"].tolist()
        produced, shadowed = production.column("ranking"), staging.column("ranking")
        agree = np.array([top_k_agreement(p, s, options.agreement_k) for p, s in zip(produced, shadowed, strict=True)])
        metrics: dict[str, float] = {"sample_size": float(len(texts)), "top3_agreement": float(agree.mean()),
                                     "top1_agreement": float(np.mean([p[:1] == s[:1] for p, s in zip(produced, shadowed, strict=True)])),
                                     "disagreements": float((~agree).sum())}
        ndcg = {role: judged_ndcg(texts, rankings) for role, rankings in (("production", produced), ("staging", shadowed))}
        both = [i for i in range(len(texts)) if np.isfinite(ndcg["production"][i]) and np.isfinite(ndcg["staging"][i])]
        for role in ("production", "staging"):
            metrics.update({f"{role}_{k}": v for k, v in _mean([ndcg[role][i] for i in both]).items()})
        if both:
            metrics["ndcg_delta"] = metrics["staging_ndcg_at_10"] - metrics["production_ndcg_at_10"]
        bucket = pd.DataFrame({
            "text": texts,
            "production_top3": [", ".join(p[:3]) for p in produced], "staging_top3": [", ".join(s[:3]) for s in shadowed],
            "production_top_text": production.column("top_text"), "staging_top_text": staging.column("top_text"),
            "production_ndcg_at_10": np.round(ndcg["production"], 4), "staging_ndcg_at_10": np.round(ndcg["staging"], 4),
        })[~agree].reset_index(drop=True)
        return metrics, bucket

    def observe(self, replay, traffic, options) -> dict[str, float]:
        values = judged_ndcg(traffic.rows["text"].tolist(), replay.column("ranking"))
        observed = _mean(values)
        return observed if observed["judged_queries"] else {}

    def shadow_event(self, metrics: dict[str, float], *, model_name: str, staging_version: str,
                     production_version: str, production_role: str) -> dict[str, Any]:
        event = super().shadow_event(metrics, model_name=model_name, staging_version=staging_version,
                                     production_version=production_version, production_role=production_role)
        event.update({"student_accept_rate": round(metrics["top3_agreement"], 4),
                      "top1_agreement": round(metrics["top1_agreement"], 4),
                      "disagreements": int(metrics["disagreements"])})
        for role, name in (("staging", "student"), ("production", production_role)):
            if f"{role}_ndcg_at_10" in metrics and np.isfinite(metrics[f"{role}_ndcg_at_10"]):
                event[f"{name}_ndcg_at_10"] = round(metrics[f"{role}_ndcg_at_10"], 4)
        return event

    def bootstrap(self, name: str, candidate: VersionRecord, fetch: FetchArtifact) -> str | None:
        """Register the teacher of the candidate's `distill_reranker` run as the first production model."""
        run = candidate.provenance.pipeline_run
        if not run:
            return None
        teacher, teacher_id = fetch(run, "train_rerank_teacher", "rerank_teacher")
        dataset, _ = fetch(run, "load_rerank_data", "rerank_dataset")
        report, _ = fetch(run, "evaluate_rerankers", "rerank_report")
        folder = Path(tempfile.mkdtemp(prefix="reranker-teacher-")) / "teacher"
        shutil.copytree(teacher.path, folder)
        bundle_folder(folder, dataset.corpus, dataset.k)
        record = teacher_record(run, teacher_id, report)
        return register_reranker(folder, name, record, "pytorch",
                                 description=f"Teacher of {run} (PyTorch cross-encoder), first production model.").version


# ---------------------------------------------------------------------------------------------------------
# Records and registration
# ---------------------------------------------------------------------------------------------------------


def bundle_folder(folder: str | Path, corpus: dict[str, str], k: int) -> None:
    """Make a model folder a reranker folder: the corpus it retrieves from and its K in the card."""
    from mangadistill.models.model_dir import MODEL_CARD
    from mangadistill.reranker.serving import write_corpus

    folder = Path(folder)
    write_corpus(folder, corpus)
    card = json.loads((folder / MODEL_CARD).read_text(encoding="utf-8"))
    (folder / MODEL_CARD).write_text(json.dumps({**card, "rerank_k": int(k)}, indent=2), encoding="utf-8")


def _benchmark(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(metrics[key]) for key in BENCHMARK_KEYS
            if isinstance(metrics.get(key), (int, float)) and np.isfinite(metrics[key])}


def student_record(run_name: str, source_id: str, report: dict[str, Any], teacher: str) -> VersionRecord:
    served = report["served_variant"]
    return VersionRecord(family=RerankerFamily.name, role=STUDENT, served_variant=served,
                         serving_threads=int(report["serving_threads"] or 0),
                         provenance=Provenance(pipeline_run=run_name, source_id=source_id, teacher=teacher,
                                               artifacts={"rerank_student_onnx": source_id.split(":")[0]}),
                         benchmark=_benchmark(report["variants"][f"student_{served}"]))


def teacher_record(run_name: str, artifact_id: str, report: dict[str, Any]) -> VersionRecord:
    return VersionRecord(family=RerankerFamily.name, role=TEACHER, served_variant="pytorch_fp32",
                         serving_threads=int(report["serving_threads"] or 0),
                         provenance=Provenance(pipeline_run=run_name, source_id=f"{artifact_id}:teacher",
                                               artifacts={"rerank_teacher": artifact_id}),
                         benchmark={**_benchmark(report["variants"]["teacher_pytorch_fp32"]), "cost_reduction": 0.0})


def register_reranker(folder: str | Path, name: str, record: VersionRecord, model_format: str, description: str = ""):
    """Register a reranker folder as a version of `name` (in a run of its own when none is active)."""
    import mlflow

    from mangadistill.lifecycle.registration import register_version
    from mangadistill.reranker.pyfunc import log_reranker

    def register():
        return register_version(name, record, lambda: log_reranker(folder, name, model_format), description=description)

    if mlflow.active_run() is not None:
        return register()
    with mlflow.start_run(run_name=f"register-reranker-{record.role}"):
        return register()
