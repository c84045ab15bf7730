"""Step: gate-set quality of every model and rerank-call latency side by side; the run's gates and tables."""

from __future__ import annotations

from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import CostConfig, RerankEvaluationConfig, RerankExportConfig
from mangadistill.evaluation.report import latency_figure, render_markdown
from mangadistill.models.model_dir import ModelDir
from mangadistill.reranker.dataset import RerankDataset
from mangadistill.reranker.evaluate import TABLE_HEADER, comparison_rows, run_gates
from mangadistill.reranker.evaluate import evaluate_rerankers as evaluate
from mangadistill.tracking import log_figure, log_grouped
from steps._context import compute_timer, log_output_metadata


@step(experiment_tracker=True)
def evaluate_rerankers(rerank_dataset: RerankDataset, rerank_teacher: ModelDir, distilled_student: ModelDir,
                       base_student: ModelDir | None, rerank_student_onnx: ModelDir, evaluation: RerankEvaluationConfig,
                       export: RerankExportConfig, cost: CostConfig) -> Annotated[dict[str, Any], "rerank_report"]:
    """Teacher vs base student vs distilled student (runbook 9.3), serving variants (13.3), the run's gates."""
    with compute_timer():
        report = evaluate(rerank_dataset, rerank_teacher, distilled_student, base_student, rerank_student_onnx,
                          evaluation, export, cost)
    report["gates"] = run_gates(report).to_dict()
    for name, metrics in report["models"].items():
        log_grouped(f"gate_{name}", metrics)
    for name, metrics in report["variants"].items():
        log_grouped(f"serving_{name}", metrics)
    mlflow.log_text(render_markdown(comparison_rows(report), TABLE_HEADER), "tables/rerankers.md")
    log_figure(latency_figure(report["variants"]), "plots/rerank_latency.png")
    mlflow.log_dict(report, "evaluation/rerank_report.json")
    served = report["variants"][f"student_{report['served_variant']}"]
    log_output_metadata({"served_variant": report["served_variant"], "ndcg_retention": round(served["ndcg_retention"], 4),
                         "p95_ratio_vs_teacher": round(served["p95_ratio_vs_teacher"], 4),
                         "gates_passed": report["gates"]["passed"]})
    return report
