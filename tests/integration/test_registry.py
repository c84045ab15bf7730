"""Registering PyTorch and ONNX classifiers in a real SQLite MLflow registry and serving them as pyfuncs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.export.onnx import export_onnx, quantize_dynamic_int8, serving_copy
from mangadistill.lifecycle.record import Provenance, VersionRecord, find_by_source, read_record
from mangadistill.registry.register import model_format, register_classifier
from tests.tiny_models import tiny_classifier

LABELS = ["order_status", "recommendation", "out_of_scope"]
TEXTS = ["where is my order MA-123456?", "recommend a dark fantasy manga"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    pytorch, _, _ = tiny_classifier(root / "torch", LABELS, role="teacher")
    bundle = export_onnx(pytorch, root / "bundle")
    quantize_dynamic_int8(bundle)
    return pytorch, serving_copy(bundle, "onnx_int8_dynamic", root / "served")


def _register(model_dir, name, source_id):
    with mlflow.start_run():
        record = VersionRecord(family="intent", role=model_dir.card["role"], provenance=Provenance(source_id=source_id),
                               benchmark={"accuracy": 0.5, "latency_p95_ms": 3.0})
        return register_classifier(model_dir, name, record)


@pytest.fixture(scope="module")
def registered(model_dirs):
    pytorch, onnx = model_dirs
    return _register(pytorch, "registry-test", "torch-1"), _register(onnx, "registry-test", "onnx-1")


def test_each_format_registers_with_its_own_requirements(model_dirs, registered):
    pytorch, onnx = model_dirs
    assert model_format(pytorch) == "pytorch" and model_format(onnx) == "onnx"
    torch_version, onnx_version = registered
    assert (torch_version.version, onnx_version.version) == ("1", "2") and not onnx_version.reused
    client = MlflowClient()
    requirements = {}
    for registered in (torch_version, onnx_version):
        path = mlflow.pyfunc.get_model_dependencies(f"models:/registry-test/{registered.version}")
        requirements[registered.version] = Path(path).read_text()
    assert "torch==" in requirements["1"] and "onnxruntime==" not in requirements["1"]
    assert "onnxruntime==" in requirements["2"] and "torch" not in requirements["2"]
    # registering the same source again reuses the version
    assert _register(onnx, "registry-test", "onnx-1").reused
    assert find_by_source(client, "registry-test", "onnx-1") == "2"
    # the record travels as a few glance tags + one JSON tag; the benchmark as logged-model metrics
    version = client.get_model_version("registry-test", "2")
    assert set(version.tags) == {"family", "role", "stage", "gates", "rollout", "record"}
    assert read_record(client, "registry-test", "2").benchmark == {"accuracy": 0.5, "latency_p95_ms": 3.0}


def test_pyfuncs_return_intent_and_confidence(registered):
    for version in ("1", "2"):
        model = mlflow.pyfunc.load_model(f"models:/registry-test/{version}")
        out = model.predict(TEXTS)
        assert [sorted(o) for o in out] == [["confidence", "intent"]] * 2
        assert {o["intent"] for o in out} <= set(LABELS) and all(1 / 3 <= o["confidence"] <= 1.0 for o in out)
        single = model.predict(pd.DataFrame({"q": ["hi"]}))  # a one-column DataFrame still works
        assert len(single) == 1 and single[0]["intent"] in LABELS
        assert model.predict([]) == []
        with pytest.raises(Exception, match="type hint|list"):  # typed input: a bare number is refused up front
            model.predict(42)


def test_onnx_pyfunc_loads_without_torch(registered):
    code = (
        "import json, sys, mlflow\n"
        "m = mlflow.pyfunc.load_model('models:/registry-test/2')\n"
        f"out = m.predict({TEXTS!r})\n"
        "print(json.dumps({'intents': [o['intent'] for o in out], 'torch': 'torch' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), cwd="/", capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["torch"] is False and len(payload["intents"]) == 2
