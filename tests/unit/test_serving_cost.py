"""Cost model (runbook 13.3/18.3), latency summaries and the served-variant choice: pure functions."""

import time

import numpy as np
import pytest

from mangadistill.config import CostConfig, ExportConfig
from mangadistill.evaluation.cost import cost_per_million_requests, cost_reduction
from mangadistill.evaluation.latency import (
    latency_summary,
    machine_load,
    measure_interleaved,
    measure_throughput,
    service_summary,
    time_interleaved,
    time_single_queries,
)
from mangadistill.evaluation.serving import choose_served_variant, variant_table
from mangadistill.lifecycle.shadow import latency_metrics, replay


def test_cost_reduction_matches_the_runbook_example():
    assert cost_reduction(12.4, 4.8) == pytest.approx(0.6129, abs=1e-4)
    with pytest.raises(ValueError):
        cost_reduction(0.0, 1.0)


def test_cost_bills_rounded_up_duration_times_memory_plus_request_fee():
    config = CostConfig(memory_mb=1024, price_per_gb_second=1.0e-5, price_per_million_requests=0.2,
                        billing_granularity_ms=1.0)
    # 2.2 ms and 3.0 ms are billed as 3 ms each: 1e6 * 0.003 s * 1 GB * 1e-5 + 0.2 = 0.23
    assert cost_per_million_requests(np.array([2.2, 3.0]), config) == pytest.approx(0.23)
    double_memory = config.model_copy(update={"memory_mb": 2048})
    assert cost_per_million_requests(np.array([3.0]), double_memory) == pytest.approx(0.26)
    coarse = config.model_copy(update={"billing_granularity_ms": 100.0})
    assert cost_per_million_requests(np.array([3.0]), coarse) == pytest.approx(1.2)
    with pytest.raises(ValueError):
        cost_per_million_requests(np.array([]), config)


def test_latency_summary_percentiles():
    summary = latency_summary(np.arange(1, 101, dtype=float))
    assert summary["latency_p50_ms"] == pytest.approx(50.5) and summary["latency_p95_ms"] == pytest.approx(95.05)
    assert summary["latency_p99_ms"] == pytest.approx(99.01) and summary["latency_mean_ms"] == pytest.approx(50.5)


def test_timing_helpers_call_the_predictor_on_cycled_queries():
    seen = []
    timings = time_single_queries(seen.append, ["a", "b", "c"], n_timed=4, n_warmup=2)
    assert seen == ["a", "b", "a", "b", "c", "a"] and timings.shape == (4,) and (timings >= 0).all()
    calls = []
    both = time_interleaved({"x": lambda q: calls.append(("x", q)), "y": lambda q: calls.append(("y", q))},
                            ["a", "b", "c"], n_timed=3, n_warmup=0, block=2)
    assert calls == [("x", "a"), ("x", "b"), ("y", "a"), ("y", "b"), ("x", "c"), ("y", "c")]
    assert both["y"].shape == (3,)
    batches = []
    qps = measure_throughput(batches.append, ["a", "b", "c"], batch_size=2, n_batches=3)
    assert batches[0] == ["a", "b"] and batches[1:] == [["a", "b"], ["c", "a"], ["b", "c"]] and qps > 0


@pytest.mark.parametrize(
    ("accuracy", "p95", "expected"),
    [
        # both INT8 variants within 0.5 pt: the faster one
        ({"onnx_fp32": 0.90, "onnx_int8_dynamic": 0.898, "onnx_int8_static": 0.897},
         {"onnx_fp32": 5.0, "onnx_int8_dynamic": 2.0, "onnx_int8_static": 1.5}, "onnx_int8_static"),
        # the faster one loses too much accuracy: the other INT8 variant
        ({"onnx_fp32": 0.90, "onnx_int8_dynamic": 0.898, "onnx_int8_static": 0.88},
         {"onnx_fp32": 5.0, "onnx_int8_dynamic": 2.0, "onnx_int8_static": 1.5}, "onnx_int8_dynamic"),
        # neither within 0.5 pt: fp32
        ({"onnx_fp32": 0.90, "onnx_int8_dynamic": 0.89, "onnx_int8_static": 0.88},
         {"onnx_fp32": 5.0, "onnx_int8_dynamic": 2.0, "onnx_int8_static": 1.5}, "onnx_fp32"),
        # an INT8 variant more accurate than fp32 qualifies
        ({"onnx_fp32": 0.90, "onnx_int8_dynamic": 0.91}, {"onnx_fp32": 5.0, "onnx_int8_dynamic": 2.0},
         "onnx_int8_dynamic"),
        # no INT8 variant built
        ({"onnx_fp32": 0.90}, {"onnx_fp32": 5.0}, "onnx_fp32"),
    ],
)
def test_served_variant_choice_truth_table(accuracy, p95, expected):
    variant, reason = choose_served_variant(accuracy, p95, fp32_accuracy=0.90, config=ExportConfig())
    assert variant == expected and reason


def test_configured_served_variant_wins():
    config = ExportConfig(serve="onnx_fp32")
    assert choose_served_variant({"onnx_int8_dynamic": 0.9}, {"onnx_int8_dynamic": 1.0}, 0.9, config)[0] == "onnx_fp32"


def test_variant_table_rows_compare_with_the_fp32_student():
    metrics = {"latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "latency_p99_ms": 3.0, "service_p95_ms": 1.9,
               "throughput_qps": 500.0, "size_mb": 9.0, "cost_per_million_usd": 0.25}
    speed = {"student_pytorch_fp32": metrics, "student_onnx_int8_dynamic": {**metrics, "cold_start_ms": 250.0}}
    rows = variant_table(speed, {"student_pytorch_fp32": 0.90, "student_onnx_int8_dynamic": 0.897})
    assert rows[0][2] == "baseline" and rows[1][2] == "-0.3" and rows[1][8] == "250" and rows[0][8] == "n/a"
    assert rows[0][6] == "1.90"  # service-time p95


def _spin(ms: float) -> None:  # `ms` of this thread's CPU time, like a model's forward pass
    end = time.thread_time() + ms / 1e3
    while time.thread_time() < end:
        pass


def test_service_time_counts_only_time_on_the_cpu():
    """A call that waits (here: sleeps, as one preempted by another process does) costs wall time but no
    service time; a call that computes costs both. The latency gate reads service time."""
    timings = measure_interleaved({"waits": lambda q: time.sleep(0.004), "computes": lambda q: _spin(2.0)},
                                  ["q"], n_timed=20, n_warmup=1, block=5)
    waits, computes = service_summary(timings["waits"], threads=1), service_summary(timings["computes"], threads=1)
    assert waits["latency_p95_ms"] >= 4.0 and waits["service_p95_ms"] < 1.0 and waits["on_cpu_share"] < 0.25
    assert computes["service_p95_ms"] >= 1.8 and computes["service_p95_ms"] <= computes["latency_p95_ms"] + 1e-6
    # several threads per query: worker threads' CPU is not the caller's, so service time falls back to wall time
    assert service_summary(timings["waits"], threads=2)["service_p95_ms"] == waits["latency_p95_ms"]
    assert service_summary(timings["waits"], threads=None)["service_p95_ms"] == waits["latency_p95_ms"]
    load = machine_load()
    assert load["cpu_count"] >= 1 and (load["load_avg_1m"] >= 0 or np.isnan(load["load_avg_1m"]))


def test_shadow_latency_metrics_read_service_time_for_one_thread_versions():
    production = replay(lambda texts: [{"x": _spin(1.0)}], ["a", "b", "c"])
    staging = replay(lambda texts: [{"x": time.sleep(0.003)}], ["a", "b", "c"])
    metrics = latency_metrics(production, staging, (1, 1))
    assert metrics["staging_p95_latency_ms"] >= 3.0 and metrics["staging_p95_service_ms"] < 1.0
    assert metrics["production_p95_service_ms"] >= 0.9
    assert metrics["p95_service_ratio"] < 1.0 < metrics["p95_latency_ratio"]
    # the version's thread count unknown (None): no service time to trust, the wall time stands in
    unknown = latency_metrics(production, staging)
    assert unknown["staging_p95_service_ms"] == unknown["staging_p95_latency_ms"]
