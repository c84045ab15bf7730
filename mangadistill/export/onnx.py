"""ONNX export and INT8 quantization of a saved classifier, and a torch-free ONNX predictor (runbook 13.3).

An *ONNX bundle* is one folder: the fp32 graph (``model.onnx``), its INT8 variants
(``model_int8_dynamic.onnx``, ``model_int8_static.onnx``), the tokenizer files and the
``mangadistill.json`` card, whose ``variants`` maps a variant name to its file and whose ``model_file``
names the variant served by default. `serving_copy` cuts a bundle down to one variant for deployment.

Export and quantization use optimum (`ORTModelForSequenceClassification(export=True)`, `ORTQuantizer`);
`OnnxClassifier` needs only onnxruntime, numpy and `tokenizers`, so a serving process never imports torch.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from mangadistill.models.decision import card_refusal_rule, decide
from mangadistill.models.model_dir import MODEL_CARD, ModelDir

QuantizationTarget = Literal["arm64", "avx2", "avx512", "avx512_vnni"]
Variant = Literal["onnx_fp32", "onnx_int8_dynamic", "onnx_int8_static"]
VARIANT_FILES: dict[str, str] = {
    "onnx_fp32": "model.onnx",
    "onnx_int8_dynamic": "model_int8_dynamic.onnx",
    "onnx_int8_static": "model_int8_static.onnx",
}
#: Operators quantized dynamically; embedding Gathers are handled by `quantize_embedding_tables`.
DYNAMIC_OPERATORS = ("MatMul", "Attention")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
_BUNDLE_FILES = (*_TOKENIZER_FILES, "config.json", MODEL_CARD)


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


def _quantization_config(target: QuantizationTarget, *, is_static: bool, operators: Sequence[str], per_channel: bool):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    preset = getattr(AutoQuantizationConfig, target)
    return preset(is_static=is_static, per_channel=per_channel, operators_to_quantize=list(operators))


def _update_card(bundle: Path, **updates: object) -> None:
    card_path = bundle / MODEL_CARD
    card = {**json.loads(card_path.read_text(encoding="utf-8")), **updates}
    card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")


def _graph_inputs(path: Path) -> set[str]:
    import onnxruntime

    return {i.name for i in onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()}


def _add_variant(bundle: ModelDir, variant: str, produced: Path, details: dict[str, object]) -> ModelDir:
    """Move a produced graph into the bundle and record it (and how it was quantized) in the card."""
    shutil.move(str(produced), Path(bundle.path) / VARIANT_FILES[variant])
    card = bundle.card
    _update_card(Path(bundle.path), variants={**card.get("variants", {}), variant: VARIANT_FILES[variant]},
                 quantization={**card.get("quantization", {}), variant: details})
    return bundle


def export_onnx(model_dir: ModelDir, out_dir: str | Path, *, ephemeral: bool = False, refusal_label: str | None = None,
                refusal_threshold: float = 0.0) -> ModelDir:
    """Export a PyTorch classifier folder to an ONNX bundle at `out_dir` holding the fp32 graph.

    A `refusal_threshold` > 0 (with its `refusal_label`) goes into the card: every consumer of the bundle
    refuses queries whose top probability is below it (`mangadistill.models.decision`).
    """
    from optimum.onnxruntime import ORTModelForSequenceClassification

    out_dir = Path(out_dir)
    model = ORTModelForSequenceClassification.from_pretrained(model_dir.path, export=True)
    model.save_pretrained(out_dir)
    for name in _TOKENIZER_FILES:
        source = Path(model_dir.path) / name
        if source.exists() and not (out_dir / name).exists():
            shutil.copy2(source, out_dir / name)
    card = {**model_dir.card, "format": "onnx", "model_file": VARIANT_FILES["onnx_fp32"],
            "variants": {"onnx_fp32": VARIANT_FILES["onnx_fp32"]}}
    if refusal_threshold > 0 and refusal_label is not None:
        card.update(refusal_label=refusal_label, refusal_threshold=float(refusal_threshold))
    (out_dir / MODEL_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return ModelDir(str(out_dir), ephemeral=ephemeral)


def quantize_embedding_tables(onnx_path: Path, block_size: int = 32) -> None:
    """Rewrite every Gather over a constant table (word/position/type embeddings) in place as onnxruntime's
    4-bit ``GatherBlockQuantized``: one scale and zero point per `block_size` values along the hidden axis.

    Per-tensor INT8 embeddings lose accuracy (a few outlier rows stretch the single range); block-wise
    4-bit keeps each row's own range at half the bytes. Uses onnxruntime's `MatMulNBitsQuantizer`.
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=False, op_types_to_quantize=("Gather",),
                                          quant_axes=(("Gather", 1),))
    quantizer = MatMulNBitsQuantizer(onnx.load(str(onnx_path)), algo_config=config)
    with np.errstate(divide="ignore", invalid="ignore"):  # all-zero blocks (the [PAD] row) get scale 0, handled
        quantizer.process()
    quantizer.model.save_model_to_file(str(onnx_path), False)


def quantize_dynamic_int8(bundle: ModelDir, target: QuantizationTarget | None = None, *, per_channel: bool = True,
                          embedding_block_size: int | None = 32) -> ModelDir:
    """Add ``onnx_int8_dynamic``: INT8 MatMul weights (activations quantized at run time, no calibration).

    Embedding tables become 4-bit block-wise (`quantize_embedding_tables`) unless `embedding_block_size`
    is None, in which case they stay fp32.
    """
    from optimum.onnxruntime import ORTQuantizer

    target = target or detect_quantization_target()
    config = _quantization_config(target, is_static=False, operators=DYNAMIC_OPERATORS, per_channel=per_channel)
    with tempfile.TemporaryDirectory(prefix="quantize-") as scratch:
        quantizer = ORTQuantizer.from_pretrained(bundle.path, file_name=VARIANT_FILES["onnx_fp32"])
        quantizer.quantize(save_dir=scratch, quantization_config=config, file_suffix="int8")
        produced = Path(scratch) / "model_int8.onnx"
        if embedding_block_size is not None:
            quantize_embedding_tables(produced, embedding_block_size)
        return _add_variant(bundle, "onnx_int8_dynamic", produced, {
            "target": target, "per_channel": per_channel, "operators": list(DYNAMIC_OPERATORS),
            "embeddings": _embedding_note(embedding_block_size)})


def quantize_static_int8(
    bundle: ModelDir,
    calibration_texts: Sequence[str],
    target: QuantizationTarget | None = None,
    operators: Sequence[str] = ("MatMul",),
    percentile: float | None = None,
    *,
    per_channel: bool = True,
    embedding_block_size: int | None = 32,
) -> ModelDir:
    """Add ``onnx_int8_static``: INT8 weights and activations, ranges calibrated on `calibration_texts`.

    Calibration uses min/max (``percentile=None``) or percentile ranges over the activations of the
    calibration rows, tokenised exactly as served. Embedding tables as in `quantize_dynamic_int8`.
    """
    from datasets import Dataset
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoCalibrationConfig

    if not calibration_texts:
        raise ValueError("static quantization needs calibration texts (export.calibration_rows > 0)")
    target = target or detect_quantization_target()
    config = _quantization_config(target, is_static=True, operators=operators, per_channel=per_channel)
    # The histogram calibrators stack activations, so every row is padded to the longest calibration row.
    tokenizer = _load_tokenizer(Path(bundle.path), int(bundle.card["max_length"]))
    encodings = tokenizer.encode_batch(list(calibration_texts))
    columns = {
        "input_ids": [e.ids for e in encodings],
        "attention_mask": [e.attention_mask for e in encodings],
        "token_type_ids": [e.type_ids for e in encodings],
    }
    inputs = _graph_inputs(Path(bundle.path) / VARIANT_FILES["onnx_fp32"])
    dataset = Dataset.from_dict({name: values for name, values in columns.items() if name in inputs})
    calibration = (AutoCalibrationConfig.minmax(dataset) if percentile is None
                   else AutoCalibrationConfig.percentiles(dataset, percentile=percentile))
    with tempfile.TemporaryDirectory(prefix="quantize-") as scratch:
        quantizer = ORTQuantizer.from_pretrained(bundle.path, file_name=VARIANT_FILES["onnx_fp32"])
        ranges = quantizer.fit(dataset, calibration, onnx_augmented_model_name=Path(scratch) / "augmented.onnx",
                               operators_to_quantize=config.operators_to_quantize)
        quantizer.quantize(save_dir=scratch, quantization_config=config, calibration_tensors_range=ranges,
                           file_suffix="int8")
        produced = Path(scratch) / "model_int8.onnx"
        if embedding_block_size is not None:
            quantize_embedding_tables(produced, embedding_block_size)
        return _add_variant(bundle, "onnx_int8_static", produced, {
            "target": target, "per_channel": per_channel, "operators": list(operators),
            "embeddings": _embedding_note(embedding_block_size), "calibration_rows": len(calibration_texts),
            "calibration": "minmax" if percentile is None else f"percentile {percentile}"})


def _embedding_note(block_size: int | None) -> str:
    return "fp32" if block_size is None else f"int4 block-wise ({block_size} per block)"


def serving_copy(bundle: ModelDir, variant: str, out_dir: str | Path, serving_threads: int | None = None) -> ModelDir:
    """A folder with only `variant`'s graph, the tokenizer and the card: what a deployment ships. With
    `serving_threads`, the card says how many threads per query it was benchmarked with (its pyfunc uses them)."""
    variants = bundle.card.get("variants", {})
    if variant not in variants:
        raise ValueError(f"variant '{variant}' is not in the bundle (has: {', '.join(sorted(variants))})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (*_BUNDLE_FILES, variants[variant]):
        if (Path(bundle.path) / name).exists():
            shutil.copy2(Path(bundle.path) / name, out_dir / name)
    extra = {"serving_threads": int(serving_threads)} if serving_threads else {}
    _update_card(out_dir, model_file=variants[variant], variants={variant: variants[variant]}, served_variant=variant,
                 **extra)
    return ModelDir(str(out_dir))


def _load_tokenizer(folder: Path, max_length: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding()
    return tokenizer


class OnnxClassifier:
    """Tokenise with `tokenizers`, run one ONNX graph of a bundle with onnxruntime; no torch involved."""

    def __init__(self, model_dir: str | Path, variant: str | None = None, num_threads: int | None = None) -> None:
        import onnxruntime

        folder = Path(model_dir)
        card = json.loads((folder / MODEL_CARD).read_text(encoding="utf-8"))
        self.labels: list[str] = list(card["labels"])
        self.refusal_id, self.refusal_threshold = card_refusal_rule(card)
        self.variant = variant or card.get("served_variant") or "onnx_fp32"
        model_file = card.get("variants", {}).get(variant) if variant else card["model_file"]
        if model_file is None:
            raise ValueError(f"variant '{variant}' is not in {folder} (has: {', '.join(card.get('variants', {}))})")
        options = onnxruntime.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(str(folder / model_file), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = _load_tokenizer(folder, int(card["max_length"]))

    def encode(self, texts: Sequence[str] | Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        """The graph's inputs for `texts`, each (B, L) int64; a (first, second) tuple is encoded as a pair."""
        encodings = self.tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {k: v for k, v in feeds.items() if k in self.input_names}

    def logits(self, texts: Sequence[str] | Sequence[tuple[str, str]]) -> np.ndarray:
        """Logits of shape (len(texts), num_labels) (see `encode`)."""
        return self.session.run(None, self.encode(texts))[0]

    def predict(self, texts: Sequence[str]) -> list[str]:
        return self.predict_with_confidence(texts)[0]

    def predict_with_confidence(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """Labels (refused below the card's refusal threshold) and the top-class softmax probability of each text."""
        predictions, confidence = decide(self.logits(texts), self.refusal_id, self.refusal_threshold)
        return [self.labels[i] for i in predictions], confidence
