"""ONNX variants of the distilled responder (optimum): fp32 export with a KV cache, and dynamic INT8.

Each variant is a self-contained folder (ONNX graph, config, generation config, tokenizer and a
`mangadistill.json` card with ``format: onnx`` and the graph's file name), so `generation.load_chat_model`
serves it with onnxruntime the same way it serves a PyTorch folder. INT8 uses the quantization preset of this
CPU (`mangadistill.export.onnx.detect_quantization_target`: VNNI > AVX-512 > AVX2), the one the intent track uses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mangadistill.export.onnx import QuantizationTarget, detect_quantization_target
from mangadistill.models.model_dir import MODEL_CARD

__all__ = ["ONNX_FP32", "ONNX_INT8", "PYTORCH_FP32", "benchmark_variants", "export_variants"]

ONNX_FP32, ONNX_INT8 = "onnx_fp32", "onnx_int8"
_FP32_FILE, _INT8_FILE = "model.onnx", "model_quantized.onnx"


def _card(folder: Path, **updates: object) -> None:
    path = folder / MODEL_CARD
    card = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    card.update(updates)
    path.write_text(json.dumps(card, indent=2), encoding="utf-8")


def export_variants(merged_dir: Path, out_root: Path, target: QuantizationTarget | None = None) -> dict[str, Path]:
    """``{"onnx_fp32": folder, "onnx_int8": folder}`` exported from the merged PyTorch model in `merged_dir`."""
    from optimum.onnxruntime import ORTModelForCausalLM, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig
    from transformers import AutoTokenizer

    target = target or detect_quantization_target()
    fp32, int8 = out_root / ONNX_FP32, out_root / ONNX_INT8
    for folder in (fp32, int8):
        shutil.rmtree(folder, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ORTModelForCausalLM.from_pretrained(merged_dir, export=True, use_cache=True).save_pretrained(fp32)
    tokenizer.save_pretrained(fp32)
    if (merged_dir / MODEL_CARD).exists():
        shutil.copy(merged_dir / MODEL_CARD, fp32 / MODEL_CARD)
    _card(fp32, format="onnx", onnx_file=_FP32_FILE, variant=ONNX_FP32)
    preset = getattr(AutoQuantizationConfig, target)(is_static=False, per_channel=True)
    ORTQuantizer.from_pretrained(fp32, file_name=_FP32_FILE).quantize(save_dir=int8, quantization_config=preset)
    for name in [p.name for p in fp32.iterdir() if p.is_file() and not p.name.endswith((".onnx", ".onnx_data"))]:
        if not (int8 / name).exists():
            shutil.copy(fp32 / name, int8 / name)
    _card(int8, format="onnx", onnx_file=_INT8_FILE, variant=ONNX_INT8, quantization=f"dynamic int8 ({target})")
    return {ONNX_FP32: fp32, ONNX_INT8: int8}


PYTORCH_FP32 = "pytorch_fp32"


def benchmark_variants(folders: dict[str, Path], rows, evaluation, *, max_rubric_drop: float) -> dict:
    """Each variant's gate-set rubric and hallucination rate, and its single-request p50/p95 and tokens/s on the
    same prompts in this process; the served variant is the fastest (p95) whose rubric is within
    `max_rubric_drop` of PyTorch's (PyTorch itself when none is)."""
    from mangadistill.response.catalog import store_knowledge
    from mangadistill.response.evaluate import quality
    from mangadistill.response.generation import HFChatModel, generate_batch, measure_generation

    knowledge = store_knowledge()
    timed = [row.messages() for row in rows[:evaluation.latency_prompts]]
    report: dict[str, dict] = {}
    for name, folder in folders.items():
        model = HFChatModel(folder, name=name, threads=evaluation.threads)
        answers = [r.text for r in generate_batch(model.model, model.tokenizer, [row.messages() for row in rows],
                                                  max_new_tokens=evaluation.max_new_tokens,
                                                  batch_size=evaluation.batch_size)]
        metrics, _ = quality(rows, answers, knowledge, evaluation.word_limit)
        speed = measure_generation(model, timed, evaluation.max_new_tokens)
        weights = [p for p in Path(folder).rglob("*")
                   if p.suffix in (".onnx", ".onnx_data", ".safetensors") and "adapter" not in p.parts]
        size = sum(p.stat().st_size for p in weights)
        report[name] = {"rubric": metrics["rubric"], "hallucination_rate": metrics["hallucination_rate"],
                        "latency_p50_ms": speed["p50_ms"], "latency_p95_ms": speed["p95_ms"],
                        "tokens_per_s": speed["tokens_per_s"], "size_mb": size / 1e6}
    floor = report[PYTORCH_FP32]["rubric"] - max_rubric_drop
    eligible = [name for name in report if name != PYTORCH_FP32 and report[name]["rubric"] >= floor]
    served = min(eligible, key=lambda n: report[n]["latency_p95_ms"]) if eligible else PYTORCH_FP32
    fastest = report[served]
    reason = (f"{served}: gate rubric {fastest['rubric']:.2f} within {max_rubric_drop} of PyTorch's "
              f"{report[PYTORCH_FP32]['rubric']:.2f}, p95 {fastest['latency_p95_ms']:.0f} ms" if served != PYTORCH_FP32
              else f"no ONNX variant within {max_rubric_drop} rubric of PyTorch's {report[PYTORCH_FP32]['rubric']:.2f}")
    ratios = {name: report[name]["latency_p95_ms"] / report[PYTORCH_FP32]["latency_p95_ms"] for name in report}
    return {"variants": report, "served_variant": served, "served_reason": reason,
            "p95_ratio_vs_pytorch": ratios, "threads": evaluation.threads,
            "rows": len(rows), "timed_prompts": len(timed)}
