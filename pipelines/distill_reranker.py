"""`distill_reranker`: ranking data -> cross-encoder teacher -> teacher scores -> distilled (and base) student ->
ONNX/INT8 -> gate-set and latency evaluation -> registry (runbook 9)."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import DistillRerankerConfig
from steps import (
    evaluate_rerankers,
    export_rerank_student,
    load_rerank_data,
    register_reranker,
    score_with_rerank_teacher,
    train_rerank_student,
    train_rerank_teacher,
)


@pipeline
def distill_reranker(config: DistillRerankerConfig) -> None:
    """Distil the cross-encoder teacher into a 2-3 layer student and register its served ONNX graph."""
    dataset = load_rerank_data(config=config.data)
    teacher = train_rerank_teacher(dataset, config=config.teacher, evaluation=config.evaluation)
    scores = score_with_rerank_teacher(dataset, teacher, config=config.teacher)
    distilled = train_rerank_student(dataset, teacher, scores, config=config.student, evaluation=config.evaluation,
                                     teacher_model=config.teacher.model, distilled=True, id="train_distilled_reranker")
    base = None
    if config.student.train_base:
        base = train_rerank_student(dataset, teacher, scores, config=config.student, evaluation=config.evaluation,
                                    teacher_model=config.teacher.model, distilled=False, id="train_base_reranker")
    onnx = export_rerank_student(dataset, distilled, config=config.export)
    report = evaluate_rerankers(dataset, teacher, distilled, base, onnx, evaluation=config.evaluation,
                                export=config.export, cost=config.cost)
    register_reranker(onnx, report, dataset, config=config.registry, resolved_config=config.model_dump(mode="json"))


def run_outputs(run: Any) -> dict[str, Any]:
    return {
        "report": run.steps["evaluate_rerankers"].outputs["rerank_report"][0].load(),
        "registered_model": run.steps["register_reranker"].outputs["registered_model"][0].load(),
    }


def summary(run: Any) -> list[Any]:
    """What `run.py` prints at the end: first stage / teacher / base / distilled student, epochs, gates."""
    from rich.table import Table

    from mangadistill.reranker.evaluate import TABLE_HEADER, comparison_rows

    outputs = run_outputs(run)
    report, registered = outputs["report"], outputs["registered_model"]
    table = Table(title=f"Gate set ({report['gate_queries']} queries x K={report['k']} candidates): rerank calls timed "
                        f"one at a time, {report['serving_threads'] or 'default'} thread(s), one process")
    for column in TABLE_HEADER:
        table.add_column(column, justify="left" if column == "Model" else "right")
    for row in comparison_rows(report):
        table.add_row(*row)
    printed: list[Any] = [table]
    for step_name in ("train_rerank_teacher", "train_distilled_reranker", "train_base_reranker"):
        if step_name in run.steps:
            meta = run.steps[step_name].outputs[
                "rerank_teacher" if step_name == "train_rerank_teacher" else "rerank_student"][0].run_metadata
            if "best_epoch" in meta:
                data = (f"; {meta['labelled_queries']} labelled + {meta['transfer_queries']} teacher-scored transfer "
                        "queries" if meta.get("transfer_queries") else "")
                printed.append(f"{step_name}: kept epoch {meta['best_epoch']} of {meta['epochs_trained']} "
                               f"(val NDCG@10 {meta['best_val_ndcg_at_10']:.4f}); {meta['stop_reason']}{data}")
    served = report["variants"][f"student_{report['served_variant']}"]
    printed.append(f"served {report['served_reason']}; keeps {100 * served['ndcg_retention']:.1f}% of the teacher's "
                   f"NDCG@10 at {served['p95_ratio_vs_teacher']:.2f}x its p95 and {100 * served['cost_reduction']:.0f}% "
                   "lower cost")
    printed.append(f"run gates: {'PASS' if report['gates']['passed'] else 'FAIL'}: {report['gates']['reason']}")
    how = "reused" if registered["reused"] else "registered"
    printed.append(f"{how} {registered['uri']}  (MLflow run {registered['run_id']})")
    return printed
