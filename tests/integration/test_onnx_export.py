"""ONNX export + dynamic INT8 quantization of a tiny classifier, served without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from mangadistill.config import PACKAGED_MINILM
from mangadistill.export.onnx import OnnxClassifier, detect_quantization_target, export_onnx, quantize_dynamic_int8
from mangadistill.models.encoders import load_tokenizer, resolve_model_path, save_model_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["where is my order MA-123456?", "hi", "how much is berserk deluxe vol 3", "do you ship to canada"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    tokenizer = load_tokenizer(resolve_model_path(PACKAGED_MINILM))
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                                                     num_attention_heads=4, intermediate_size=128, num_labels=3)).eval()
    fp32 = save_model_dir(model, tokenizer, root / "torch", role="student", labels=["a", "b", "c"], max_length=32)
    onnx = export_onnx(fp32, root / "onnx")
    int8 = quantize_dynamic_int8(onnx, root / "int8")
    with torch.inference_mode():
        reference = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    return fp32, onnx, int8, reference


def test_fp32_onnx_matches_pytorch(exported):
    _, onnx, _, reference = exported
    assert onnx.card["format"] == "onnx_fp32"
    np.testing.assert_allclose(OnnxClassifier(onnx.path).logits(TEXTS), reference, atol=1e-4)


def test_int8_is_smaller_and_close(exported):
    _, onnx, int8, reference = exported
    assert int8.card["format"] == "onnx_int8_dynamic" and int8.card["quantization_target"] == detect_quantization_target()
    onnx_size = (Path(onnx.path) / "model.onnx").stat().st_size
    int8_size = (Path(int8.path) / "model_quantized.onnx").stat().st_size
    assert int8_size < onnx_size / 2.5
    assert np.abs(OnnxClassifier(int8.path).logits(TEXTS) - reference).max() < 0.1


def test_quantization_target_follows_cpu_flags():
    assert detect_quantization_target("flags : fpu avx2 avx512f avx512_vnni") in {"avx512_vnni", "arm64"}
    assert detect_quantization_target("flags : fpu avx2") in {"avx2", "arm64"}


def test_onnx_classifier_serves_without_torch(exported):
    _, _, int8, _ = exported
    code = (
        "import sys, json\n"
        "from mangadistill.export.onnx import OnnxClassifier\n"
        f"labels = OnnxClassifier({int8.path!r}).predict({TEXTS!r})\n"
        "print(json.dumps({'labels': labels, 'torch': 'torch' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["torch"] is False and len(payload["labels"]) == len(TEXTS)
    assert set(payload["labels"]) <= {"a", "b", "c"}
