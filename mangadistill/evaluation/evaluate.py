"""Gate-set quality of a saved classifier (PyTorch folder or ONNX bundle variant) and its confusion matrix."""

from __future__ import annotations

import numpy as np

from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.metrics import classification_metrics, confusion
from mangadistill.models.model_dir import ModelDir


def _quality(dataset: IntentDataset, split: str, logits: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    y_true = dataset.label_ids(split)
    y_pred = logits.argmax(-1)
    metrics = classification_metrics(y_true, y_pred, len(dataset.labels), dataset.rare_label_ids, dataset.refusal_label_id)
    metrics["rows"] = float(len(y_true))
    return metrics, confusion(y_true, y_pred, len(dataset.labels))


def evaluate_model_dir(model_dir: ModelDir, dataset: IntentDataset, split: str = "gate") -> tuple[dict[str, float], np.ndarray]:
    """Metrics of runbook 4.2/6.10 on `split` (plus size and parameters), and the confusion matrix (true x predicted)."""
    from mangadistill.models.encoders import load_model_dir
    from mangadistill.training.loop import predict_logits

    model, tokenizer = load_model_dir(model_dir)
    logits = predict_logits(model, tokenizer, dataset.texts(split), int(model_dir.card["max_length"]),
                            desc=f"evaluate {model_dir.card['role']}")
    metrics, matrix = _quality(dataset, split, logits)
    metrics["size_mb"] = model_dir.size_mb()
    metrics["num_parameters"] = float(model_dir.card["num_parameters"])
    return metrics, matrix


def evaluate_onnx_variant(
    bundle: ModelDir, variant: str, dataset: IntentDataset, split: str = "gate", batch_size: int = 64
) -> tuple[dict[str, float], np.ndarray]:
    """Like `evaluate_model_dir`, for one graph of an ONNX bundle served with onnxruntime."""
    from mangadistill.export.onnx import OnnxClassifier

    classifier = OnnxClassifier(bundle.path, variant)
    texts = dataset.texts(split)
    logits = np.concatenate([classifier.logits(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])
    return _quality(dataset, split, logits)
