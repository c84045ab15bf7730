"""ONNX export + dynamic and static INT8 quantization of a tiny classifier, served without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mangadistill.export.onnx import (
    VARIANT_FILES,
    OnnxClassifier,
    detect_quantization_target,
    export_onnx,
    quantize_dynamic_int8,
    quantize_static_int8,
    serving_copy,
)
from mangadistill.models.decision import softmax
from tests.tiny_models import tiny_classifier

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["where is my order MA-123456?", "hi", "how much is berserk deluxe vol 3", "do you ship to canada"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    fp32, model, tokenizer = tiny_classifier(root / "torch", ["a", "b", "c"], hidden_size=64, layers=2)
    bundle = export_onnx(fp32, root / "onnx")
    quantize_dynamic_int8(bundle)
    quantize_static_int8(bundle, TEXTS * 4)
    with torch.inference_mode():
        reference = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    return bundle, reference


def test_bundle_card_lists_every_variant(exported):
    bundle, _ = exported
    card = bundle.card
    assert card["format"] == "onnx" and card["model_file"] == "model.onnx"
    assert card["variants"] == VARIANT_FILES
    assert card["quantization"]["onnx_int8_dynamic"]["target"] == detect_quantization_target()
    assert card["quantization"]["onnx_int8_static"]["calibration_rows"] == 16
    assert card["quantization"]["onnx_int8_static"]["embeddings"].startswith("int4 block-wise")
    assert all((Path(bundle.path) / name).is_file() for name in VARIANT_FILES.values())


def test_fp32_onnx_matches_pytorch(exported):
    bundle, reference = exported
    np.testing.assert_allclose(OnnxClassifier(bundle.path, "onnx_fp32").logits(TEXTS), reference, atol=1e-4)


@pytest.mark.parametrize("variant", ["onnx_int8_dynamic", "onnx_int8_static"])
def test_int8_is_smaller_and_close(exported, variant):
    bundle, reference = exported
    size = {name: (Path(bundle.path) / file).stat().st_size for name, file in VARIANT_FILES.items()}
    assert size[variant] < size["onnx_fp32"] / 2.5
    assert np.abs(OnnxClassifier(bundle.path, variant).logits(TEXTS) - reference).max() < 0.15


def test_serving_copy_holds_one_variant(exported, tmp_path):
    bundle, _ = exported
    served = serving_copy(bundle, "onnx_int8_dynamic", tmp_path / "served")
    graphs = sorted(p.name for p in Path(served.path).glob("*.onnx"))
    assert graphs == ["model_int8_dynamic.onnx"] and served.card["served_variant"] == "onnx_int8_dynamic"
    labels, confidence = OnnxClassifier(served.path).predict_with_confidence(TEXTS)
    assert len(labels) == len(TEXTS) and np.all((confidence > 0) & (confidence <= 1))
    with pytest.raises(ValueError, match="not in the bundle"):
        serving_copy(served, "onnx_fp32", tmp_path / "other")


def test_softmax_rows_sum_to_one():
    probabilities = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(probabilities, [[0.5, 0.5], [0.25, 0.75]])


def test_quantization_target_follows_cpu_flags():
    assert detect_quantization_target("flags : fpu avx2 avx512f avx512_vnni") in {"avx512_vnni", "arm64"}
    assert detect_quantization_target("flags : fpu avx2 avx512f") in {"avx512", "arm64"}
    assert detect_quantization_target("flags : fpu avx2") in {"avx2", "arm64"}


def test_onnx_classifier_serves_without_torch(exported, tmp_path):
    served = serving_copy(exported[0], "onnx_int8_static", tmp_path / "served")
    code = (
        "import sys, json\n"
        "from mangadistill.export.onnx import OnnxClassifier\n"
        f"labels = OnnxClassifier({served.path!r}).predict({TEXTS!r})\n"
        "print(json.dumps({'labels': labels, 'torch': 'torch' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["torch"] is False and len(payload["labels"]) == len(TEXTS)
    assert set(payload["labels"]) <= {"a", "b", "c"}


def test_a_calibrated_refusal_threshold_travels_in_the_card(tmp_path):
    fp32, _, _ = tiny_classifier(tmp_path / "torch", ["a", "b", "c"], hidden_size=32)
    plain = export_onnx(fp32, tmp_path / "plain")
    refusing = export_onnx(fp32, tmp_path / "refusing", refusal_label="c", refusal_threshold=0.99)
    assert "refusal_threshold" not in plain.card and refusing.card["refusal_threshold"] == 0.99
    labels, confidence = OnnxClassifier(refusing.path).predict_with_confidence(TEXTS)
    assert labels == ["c"] * len(TEXTS) and (confidence < 0.99).all()  # a random tiny model is never that sure
    assert OnnxClassifier(plain.path).predict(TEXTS) == [["a", "b", "c"][i] for i in
                                                          OnnxClassifier(plain.path).logits(TEXTS).argmax(-1)]
