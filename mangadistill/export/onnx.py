"""ONNX export and INT8 quantization of a saved classifier, and a torch-free ONNX predictor (runbook 13.3).

Export and quantization use optimum (`ORTModelForSequenceClassification(export=True)`, `ORTQuantizer`);
`OnnxClassifier` needs only onnxruntime, numpy and `tokenizers`, so a serving process never imports torch.
Each variant is a folder like a `ModelDir`: model file, tokenizer files and the `mangadistill.json` card
(with ``format`` and ``model_file`` added).
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from mangadistill.models.model_dir import MODEL_CARD, ModelDir

QuantizationTarget = Literal["arm64", "avx2", "avx512", "avx512_vnni"]
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def detect_quantization_target(cpuinfo: str | None = None) -> QuantizationTarget:
    """The optimum quantization preset that suits this CPU: VNNI > AVX-512 > AVX2; arm64 on ARM."""
    if platform.machine().lower() in {"aarch64", "arm64"}:
        return "arm64"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        except OSError:
            cpuinfo = ""
    flags = set(cpuinfo.split())
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    return "avx2"


def _write_card(source: ModelDir, target: Path, **updates: object) -> ModelDir:
    card = {**source.card, **updates}
    (target / MODEL_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    for name in _TOKENIZER_FILES:
        if (Path(source.path) / name).exists() and not (target / name).exists():
            shutil.copy2(Path(source.path) / name, target / name)
    return ModelDir(str(target))


def export_onnx(model_dir: ModelDir, out_dir: str | Path) -> ModelDir:
    """Export a PyTorch classifier folder to ``out_dir/model.onnx`` (fp32) with optimum."""
    from optimum.onnxruntime import ORTModelForSequenceClassification

    out_dir = Path(out_dir)
    model = ORTModelForSequenceClassification.from_pretrained(model_dir.path, export=True)
    model.save_pretrained(out_dir)
    return _write_card(model_dir, out_dir, format="onnx_fp32", model_file="model.onnx")


def quantize_dynamic_int8(onnx_dir: ModelDir, out_dir: str | Path, target: QuantizationTarget | None = None) -> ModelDir:
    """Dynamic INT8 quantization (weights INT8, activations quantized at run time) for this CPU."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    target = target or detect_quantization_target()
    presets = {
        "arm64": AutoQuantizationConfig.arm64,
        "avx2": AutoQuantizationConfig.avx2,
        "avx512": AutoQuantizationConfig.avx512,
        "avx512_vnni": AutoQuantizationConfig.avx512_vnni,
    }
    config = presets[target](is_static=False, per_channel=False)
    out_dir = Path(out_dir)
    quantizer = ORTQuantizer.from_pretrained(onnx_dir.path, file_name=onnx_dir.card.get("model_file", "model.onnx"))
    quantizer.quantize(save_dir=out_dir, quantization_config=config)
    return _write_card(onnx_dir, out_dir, format="onnx_int8_dynamic", model_file="model_quantized.onnx",
                       quantization_target=target)


class OnnxClassifier:
    """Tokenise with `tokenizers`, run the ONNX graph with onnxruntime; no torch involved."""

    def __init__(self, model_dir: str | Path, num_threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        folder = Path(model_dir)
        card = json.loads((folder / MODEL_CARD).read_text(encoding="utf-8"))
        self.labels: list[str] = list(card["labels"])
        options = onnxruntime.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(str(folder / card["model_file"]), options,
                                                    providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(card["max_length"]))
        self.tokenizer.enable_padding()

    def logits(self, texts: list[str]) -> np.ndarray:
        """Logits of shape (len(texts), num_labels)."""
        encodings = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})[0]

    def predict(self, texts: list[str]) -> list[str]:
        return [self.labels[i] for i in self.logits(texts).argmax(-1)]
