"""The benchmark command runs end to end (smoke config) and writes the promised JSON keys and summary.

Slow (a smoke pipeline plus two short training runs): run with ``python -m pytest -m slow``.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEYS = ("p95_ratio", "size_ratio", "int8_accuracy_delta", "kd_speedup", "flops_utilization", "overhead_share",
        "pyfunc_overhead", "server_overhead", "pipeline_minutes", "latency_gates_same_under_load")


@pytest.mark.slow
def test_quick_benchmark_writes_json_and_summary(tmp_path):
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / "run_benchmarks.py"), "--quick",
                             "--out", str(tmp_path), "--kd-rows", "64"], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    payload = json.loads((tmp_path / "benchmark.json").read_text())
    for key in KEYS:
        assert isinstance(payload[key], float), key
    assert payload["p95_ratio"] > 0 and payload["size_ratio"] > 0 and payload["kd_speedup"] > 0
    assert 0 < payload["flops_utilization"] < 1.5 and 0 <= payload["overhead_share"] < 1
    assert payload["machine"]["cores"] >= 1 and payload["details"]["kd"]["rows"] == 64
    assert isinstance(payload["machine"]["isa"], list)
    overhead = payload["details"]["overhead"]
    assert 0 < overhead["graph"]["p50_ms"] <= overhead["pyfunc"]["p50_ms"] * 1.5  # the graph is inside the pyfunc
    load = payload["details"]["under_load"]
    assert load["hogs"] >= 1 and {"latency_p95", "latency_ratio"} <= set(load["alone"]["gates"])
    assert load["loaded"]["load_avg_1m"] >= 0 and isinstance(load["same_decision"], bool)
    summary = (tmp_path / "summary.md").read_text()
    assert "Distillation benchmark" in summary and "student_onnx_int8_dynamic" in summary and "KDTrainer" in summary
    assert "Serving overhead" in summary and "MLflow pyfunc" in summary and "beside CPU hogs" in summary
