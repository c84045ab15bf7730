"""The reranker run's report: gate-set ranking quality of every model and rerank-call latency side by side.

On the frozen gate split, every model ranks each query's K candidates: the first stage as listed (BM25
order, the floor), the teacher, the base student (labels only) and the distilled student in PyTorch, and the
student's ONNX fp32 and INT8 graphs. Then one rerank call (one query and its K candidates) is timed for the
teacher (PyTorch), the student (PyTorch) and both ONNX graphs, interleaved in blocks in one process with one
thread setting (`mangadistill.evaluation.latency.time_interleaved`), so machine load falls on all alike and
the p95 ratio to the teacher is the number a gate can trust. Size is the weights on disk; cost per 1M
rerank calls comes from the measured durations (`mangadistill.evaluation.cost`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mangadistill.config import CostConfig, RerankEvaluationConfig, RerankExportConfig
from mangadistill.evaluation.cost import cost_per_million_requests, cost_reduction
from mangadistill.evaluation.latency import latency_summary, time_interleaved
from mangadistill.models.model_dir import ModelDir
from mangadistill.reranker.dataset import RerankDataset, RerankQuery
from mangadistill.reranker.metrics import ranking_metrics

__all__ = ["TABLE_HEADER", "choose_served", "comparison_rows", "evaluate_rerankers", "run_gates"]

ScoreFn = Callable[[str, list[str]], np.ndarray]
#: The run's closing table: teacher vs base student vs distilled student (and the first stage).
TABLE_HEADER = ("Model", "NDCG@10", "MRR@10", "Top-3 swap", "p95 / call", "Size", "Cost / 1M calls")


def _quality(score: ScoreFn, dataset: RerankDataset, queries: list[RerankQuery]) -> dict[str, float]:
    scores = [score(q.query, dataset.texts(q)) for q in queries]
    return ranking_metrics(scores, [q.labels for q in queries])


def _size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def choose_served(variants: dict[str, dict[str, float]], config: RerankExportConfig) -> tuple[str, str]:
    """The student variant to serve and why: INT8 unless it loses more than `max_int8_ndcg_drop` NDCG@10."""
    if config.serve != "auto":
        return config.serve, f"{config.serve} (export.serve)"
    fp32, int8 = variants["student_onnx_fp32"], variants["student_onnx_int8_dynamic"]
    drop = fp32["ndcg_at_10"] - int8["ndcg_at_10"]
    if drop <= config.max_int8_ndcg_drop:
        return "onnx_int8_dynamic", (f"onnx_int8_dynamic: NDCG@10 {-drop:+.4f} against fp32 (a loss of at most "
                                     f"{config.max_int8_ndcg_drop:g} allowed) at {fp32['latency_p95_ms'] / int8['latency_p95_ms']:.1f}x "
                                     "lower p95")
    return "onnx_fp32", f"onnx_fp32: INT8 loses {drop:.4f} NDCG@10 (limit {config.max_int8_ndcg_drop:g})"


def evaluate_rerankers(dataset: RerankDataset, teacher: ModelDir, distilled: ModelDir, base: ModelDir | None,
                       student_onnx: ModelDir, evaluation: RerankEvaluationConfig, export: RerankExportConfig,
                       cost: CostConfig) -> dict[str, Any]:
    """The report `register_reranker` records and `distill_reranker` prints (see the module docstring).

    Quality is scored with the runtime's default threads (it is not timed); the timed calls run on
    `evaluation.num_threads` with scorers of their own.
    """
    from mangadistill.evaluation.serving import torch_threads
    from mangadistill.reranker.serving import OnnxScorer, TorchScorer

    gate = dataset.split("gate")
    torch_models = {"teacher_pytorch_fp32": teacher, "student_pytorch_fp32": distilled}
    onnx_variants = ("onnx_fp32", "onnx_int8_dynamic")

    torch_scorers: dict[str, ScoreFn] = {name: TorchScorer(folder.path).scores for name, folder in torch_models.items()}

    def scorers(num_threads: int | None) -> dict[str, ScoreFn]:
        """The PyTorch models (their threads follow `torch_threads`) and ONNX sessions of `num_threads`."""
        built = dict(torch_scorers)
        for variant in onnx_variants:
            built[f"student_{variant}"] = OnnxScorer(student_onnx.path, variant, num_threads=num_threads).scores
        return built

    variants = {name: _quality(score, dataset, gate) for name, score in scorers(None).items()}
    models = {"first_stage": ranking_metrics([list(range(len(q.labels), 0, -1)) for q in gate], [q.labels for q in gate]),
              "teacher": variants["teacher_pytorch_fp32"]}
    if base is not None:
        models["base_student"] = _quality(TorchScorer(base.path).scores, dataset, gate)
    models["distilled_student"] = variants["student_pytorch_fp32"]
    with torch_threads(evaluation.num_threads) as threads:
        calls = {name: (lambda q, score=score: score(q.query, dataset.texts(q)))
                 for name, score in scorers(evaluation.num_threads).items()}
        timings = time_interleaved(calls, gate, evaluation.latency_calls, evaluation.latency_warmup,
                                   block=max(5, evaluation.latency_calls // 5))
    sizes = {"teacher_pytorch_fp32": teacher.size_mb(), "student_pytorch_fp32": distilled.size_mb()}
    for variant in onnx_variants:
        sizes[f"student_{variant}"] = _size_mb(Path(student_onnx.path) / student_onnx.card["variants"][variant])
    teacher_ndcg = variants["teacher_pytorch_fp32"]["ndcg_at_10"]
    teacher_cost = cost_per_million_requests(timings["teacher_pytorch_fp32"], cost)
    teacher_p95 = float(np.percentile(timings["teacher_pytorch_fp32"], 95))
    for name, metrics in variants.items():
        price = cost_per_million_requests(timings[name], cost)
        metrics.update(latency_summary(timings[name]), size_mb=sizes[name], cost_per_million_usd=price,
                       cost_reduction=cost_reduction(teacher_cost, price), teacher_ndcg_at_10=teacher_ndcg,
                       ndcg_retention=metrics["ndcg_at_10"] / teacher_ndcg if teacher_ndcg > 0 else math.nan)
        metrics["p95_ratio_vs_teacher"] = metrics["latency_p95_ms"] / teacher_p95
    served, reason = choose_served(variants, export)
    return {"models": models, "variants": variants, "served_variant": served, "served_reason": reason,
            "serving_threads": threads if evaluation.num_threads else 0, "gate_queries": len(gate),
            "k": dataset.k, "latency_calls": evaluation.latency_calls}


def run_gates(report: dict[str, Any]):
    """The served student's numbers against the family's offline gates a run can check by itself."""
    from mangadistill.families.reranker import RerankerFamily
    from mangadistill.lifecycle.gates import evaluate_gates

    checkable = ("ndcg_retention", "ndcg_at_10", "latency_p95_ratio", "latency_p95", "size", "cost_reduction")
    gates = {name: spec for name, spec in RerankerFamily().default_offline_gates().items() if name in checkable}
    return evaluate_gates("offline", gates, report["variants"][f"student_{report['served_variant']}"])


def comparison_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows of `TABLE_HEADER`: first stage, teacher, base student, distilled student (PyTorch), served student."""
    variants = report["variants"]
    served = f"student_{report['served_variant']}"

    def row(label: str, quality: dict[str, float], serving: dict[str, float] | None) -> tuple[str, ...]:
        return (label, f"{quality['ndcg_at_10']:.4f}", f"{quality['mrr_at_10']:.4f}",
                f"{100 * quality['top3_swap_rate']:.1f}%",
                "-" if serving is None else f"{serving['latency_p95_ms']:.1f} ms",
                "-" if serving is None else f"{serving['size_mb']:.1f} MB",
                "-" if serving is None else f"${serving['cost_per_million_usd']:.2f}")

    models = report["models"]
    rows = [row("first stage (BM25 order)", models["first_stage"], None),
            row("teacher (PyTorch)", models["teacher"], variants["teacher_pytorch_fp32"])]
    if "base_student" in models:
        rows.append(row("base student, labels only (PyTorch)", models["base_student"], variants["student_pytorch_fp32"]))
    rows.append(row("distilled student (PyTorch)", models["distilled_student"], variants["student_pytorch_fp32"]))
    rows.append(row(f"distilled student ({report['served_variant']}, served)", variants[served], variants[served]))
    return rows
