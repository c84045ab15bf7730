"""Step: time every model variant side by side, price it, and pick the ONNX variant to serve."""

from __future__ import annotations

import logging
import tempfile
from typing import Annotated, Any

import mlflow
import numpy as np
from zenml import step

from mangadistill.config import CostConfig, EvaluationConfig, ExportConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.latency import measure_cold_start_ms
from mangadistill.evaluation.report import latency_figure
from mangadistill.evaluation.serving import (
    INT8_VARIANTS,
    benchmark_variants,
    choose_served_variant,
    onnx_variant,
    serving_report,
    torch_threads,
    torch_variant,
)
from mangadistill.export.onnx import serving_copy
from mangadistill.models.model_dir import ModelDir
from mangadistill.tracking import log_figure, log_grouped
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)


@step(experiment_tracker=True)
def benchmark_serving(
    intent_dataset: IntentDataset,
    teacher_model: ModelDir,
    student_model: ModelDir,
    student_onnx: ModelDir,
    evaluation: dict[str, Any],
    export_report: dict[str, Any],
    config: EvaluationConfig,
    export: ExportConfig,
    cost: CostConfig,
) -> Annotated[dict[str, Any], "serving_report"]:
    """Warm p50/p95/p99, batch throughput, INT8 cold start, size and cost per 1M requests (runbook 6.10, 13.3)."""
    queries = intent_dataset.texts("gate")
    onnx_quality = export_report["variants"]
    with compute_timer():
        with torch_threads(config.num_threads) as threads:
            variants = [torch_variant("teacher_pytorch_fp32", teacher_model),
                        torch_variant("student_pytorch_fp32", student_model),
                        *(onnx_variant(student_onnx, v, threads) for v in student_onnx.card["variants"])]
            speed = benchmark_variants(variants, queries, config, cost, threads)
        served, reason = choose_served_variant(
            {v: m["accuracy"] for v, m in onnx_quality.items()},
            {v: speed[f"student_{v}"]["service_p95_ms"] for v in onnx_quality},
            evaluation["student"]["accuracy"], export)
        for variant in (v for v in onnx_quality if v in INT8_VARIANTS or v == served):
            if config.cold_start_runs:
                with tempfile.TemporaryDirectory(prefix="cold-start-") as folder:
                    timings = measure_cold_start_ms(serving_copy(student_onnx, variant, folder).path, queries[0],
                                                    config.cold_start_runs, threads)
                speed[f"student_{variant}"].update(cold_start_ms=float(np.median(timings)), cold_start_max_ms=max(timings))
    report = serving_report(speed, evaluation, onnx_quality, served, reason, threads)
    logger.info("serving %s: %s", served, reason)
    log_grouped("serving", {f"{name}_{k}": v for name, metrics in report["variants"].items()
                            for k, v in metrics.items() if isinstance(v, float)})
    log_grouped("serving", {**{k: report.get(k) for k in ("p95_ratio", "service_p95_ratio", "size_ratio",
                                                           "cost_reduction", "int8_accuracy_delta", "load_avg_1m")},
                            "threads": report.get("serving_threads")})
    mlflow.set_tag("served_variant", served)
    mlflow.log_text(report["variant_table_md"], "serving/variants.md")
    mlflow.log_text(report["business_table_md"], "serving/teacher_vs_served_student.md")
    mlflow.log_dict(report, "serving/serving_report.json")
    log_figure(latency_figure(report["variants"]), "serving/latency.png")
    logger.info("serving benchmark (%d threads):\n%s", threads, report["variant_table_md"])
    log_output_metadata({"served_variant": served, "p95_ratio": report["p95_ratio"], "size_ratio": report["size_ratio"]})
    return report
