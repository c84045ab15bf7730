"""The serving benchmark: every model variant timed side by side in one process (runbook 6.10, 13.3).

Variants are the teacher (PyTorch fp32), the student (PyTorch fp32) and the student's ONNX bundle
(fp32, dynamic INT8, static INT8). Each gets warm single-query p50/p95/p99, batch throughput, size on
disk and a cost per million requests from the measured durations, with one thread setting for all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mangadistill.config import CostConfig, EvaluationConfig, ExportConfig
from mangadistill.evaluation.cost import cost_per_million_requests
from mangadistill.evaluation.latency import machine_load, measure_interleaved, measure_throughput, service_summary
from mangadistill.models.model_dir import ModelDir

INT8_VARIANTS = ("onnx_int8_dynamic", "onnx_int8_static")


@dataclass(frozen=True)
class ServingVariant:
    """One way of serving a model: how to predict one query and a batch, and what it ships."""

    name: str
    predict_one: Callable[[str], object]
    predict_batch: Callable[[list[str]], object]
    size_mb: float


def torch_variant(name: str, model_dir: ModelDir) -> ServingVariant:
    from mangadistill.evaluation.latency import torch_batch, torch_single_query
    from mangadistill.models.encoders import load_model_dir

    model, tokenizer = load_model_dir(model_dir)
    max_length = int(model_dir.card["max_length"])
    return ServingVariant(name, torch_single_query(model, tokenizer, max_length), torch_batch(model, tokenizer, max_length),
                          model_dir.size_mb())


def onnx_variant(bundle: ModelDir, variant: str, num_threads: int | None) -> ServingVariant:
    from mangadistill.export.onnx import OnnxClassifier

    classifier = OnnxClassifier(bundle.path, variant, num_threads=num_threads)
    size_mb = (Path(bundle.path) / bundle.card["variants"][variant]).stat().st_size / 1e6
    return ServingVariant(f"student_{variant}", lambda text: classifier.logits([text]), classifier.logits, size_mb)


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[int]:
    """Set torch's intra-op threads for the block (default: leave them); yields the count in effect."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads or previous)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def benchmark_variants(
    variants: Sequence[ServingVariant], queries: Sequence[str], config: EvaluationConfig, cost: CostConfig,
    threads: int | None = None,
) -> dict[str, dict[str, float]]:
    """Latency percentiles and service times (variants timed round-robin; `threads` per query, see
    `service_summary`), batch throughput, size and cost per million requests, with the machine's load."""
    load_before = machine_load()
    timings = measure_interleaved({v.name: v.predict_one for v in variants}, queries, config.latency_queries,
                                  config.latency_warmup)
    load = {"load_avg_1m": max(load_before["load_avg_1m"], machine_load()["load_avg_1m"]),
            "cpu_count": load_before["cpu_count"]}
    results = {}
    for variant in variants:
        results[variant.name] = {
            **service_summary(timings[variant.name], threads),
            "throughput_qps": measure_throughput(variant.predict_batch, queries, config.throughput_batch_size,
                                                 config.throughput_batches),
            "size_mb": variant.size_mb,
            "cost_per_million_usd": cost_per_million_requests(timings[variant.name].wall_ms, cost),
            **load,
        }
    return results


def choose_served_variant(
    accuracy: dict[str, float], p95_ms: dict[str, float], fp32_accuracy: float, config: ExportConfig
) -> tuple[str, str]:
    """The ONNX variant to register, and why.

    ``serve: auto`` takes the INT8 variant with the lowest warm p95 among those whose gate accuracy is at
    most ``max_int8_accuracy_drop`` points below the fp32 student; with none, the ONNX fp32 graph.
    """
    if config.serve != "auto":
        return config.serve, f"export.serve is {config.serve}"
    drop = {v: 100 * (fp32_accuracy - accuracy[v]) for v in INT8_VARIANTS if v in accuracy and v in p95_ms}
    allowed = [v for v, points in drop.items() if points <= config.max_int8_accuracy_drop]
    if not allowed:
        worst = ", ".join(f"{v} -{points:.2f} pt" for v, points in drop.items()) or "no INT8 variant built"
        return "onnx_fp32", f"no INT8 variant within {config.max_int8_accuracy_drop} pt of fp32 ({worst})"
    best = min(allowed, key=lambda v: p95_ms[v])
    return best, (f"fastest INT8 variant (p95 {p95_ms[best]:.2f} ms) whose gate accuracy is within "
                  f"{config.max_int8_accuracy_drop} pt of the fp32 student ({0.0 - drop[best]:+.2f} pt)")


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else pattern.format(value)


def variant_table(
    speed: dict[str, dict[str, float]], accuracy: dict[str, float], reference: str = "student_pytorch_fp32"
) -> list[tuple[str, ...]]:
    """Rows like runbook 13.3: variant, accuracy, delta vs the fp32 student, latency, throughput, size, cost."""
    rows = []
    for name, metrics in speed.items():
        acc = accuracy.get(name)
        delta = None if acc is None or reference not in accuracy else 100 * (acc - accuracy[reference])
        rows.append((
            name,
            _fmt(acc, "{:.1%}"),
            "baseline" if name == reference else _fmt(delta, "{:+.1f}"),
            _fmt(metrics["latency_p50_ms"], "{:.2f}"),
            _fmt(metrics["latency_p95_ms"], "{:.2f}"),
            _fmt(metrics["latency_p99_ms"], "{:.2f}"),
            _fmt(metrics.get("service_p95_ms"), "{:.2f}"),
            _fmt(metrics["throughput_qps"], "{:.0f}"),
            _fmt(metrics.get("cold_start_ms"), "{:.0f}"),
            _fmt(metrics["size_mb"], "{:.1f}"),
            _fmt(metrics["cost_per_million_usd"], "{:.2f}"),
        ))
    return rows


VARIANT_HEADER = ("Variant", "Accuracy", "vs fp32 (pt)", "p50 ms", "p95 ms", "p99 ms",
                  "service p95 ms", "batch q/s", "cold ms",
                  "MB", "$ / 1M")

def serving_report(
    speed: dict[str, dict[str, float]],
    evaluation: dict,
    onnx_quality: dict[str, dict[str, float]],
    served: str,
    reason: str,
    threads: int,
) -> dict:
    """Everything the serving benchmark found, with the runbook 6.10 and 13.3 tables in markdown.

    ``p95_ratio``/``size_ratio`` compare the served student with the PyTorch teacher (``service_p95_ratio``:
    the same on service times, which machine load hardly moves);
    ``int8_accuracy_delta`` is the served variant's gate accuracy minus the fp32 student's, in points;
    ``cost_reduction`` is runbook 18.3 on the cost per million requests.
    """
    from mangadistill.evaluation.cost import cost_reduction
    from mangadistill.evaluation.report import comparison_table, render_markdown

    quality = {"teacher_pytorch_fp32": evaluation["teacher"], "student_pytorch_fp32": evaluation["student"],
               **{f"student_{v}": m for v, m in onnx_quality.items()}}
    variants = {name: {**{k: v for k, v in quality.get(name, {}).items() if k != "rows"}, **metrics}
                for name, metrics in speed.items()}
    teacher, student = variants["teacher_pytorch_fp32"], variants[f"student_{served}"]
    student = {**student, "num_parameters": evaluation["student"].get("num_parameters")}
    teacher = {**teacher, "num_parameters": evaluation["teacher"].get("num_parameters")}
    accuracy = {name: m["accuracy"] for name, m in variants.items() if "accuracy" in m}
    return {
        "serving_threads": threads,
        "served_variant": served,
        "served_reason": reason,
        "variants": variants,
        "p95_ratio": student["latency_p95_ms"] / teacher["latency_p95_ms"],
        "service_p95_ratio": student["service_p95_ms"] / teacher["service_p95_ms"],
        "load_avg_1m": student.get("load_avg_1m"),
        "size_ratio": student["size_mb"] / teacher["size_mb"],
        "int8_accuracy_delta": 100 * (student["accuracy"] - evaluation["student"]["accuracy"]),
        "cost_reduction": cost_reduction(teacher["cost_per_million_usd"], student["cost_per_million_usd"]),
        "variant_table_md": render_markdown(variant_table(speed, accuracy), VARIANT_HEADER),
        "business_table_md": render_markdown(comparison_table(teacher, student),
                                             ("Metric", "Teacher (PyTorch fp32)", f"Student ({served})", "Delta")),
    }
