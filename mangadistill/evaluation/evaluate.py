"""Gate-set quality of a saved classifier (PyTorch folder or ONNX bundle variant) and its confusion matrix."""

from __future__ import annotations

import logging

import numpy as np

from mangadistill.config import RefusalConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.metrics import classification_metrics, confusion
from mangadistill.models.decision import calibrate_refusal_threshold, decide
from mangadistill.models.model_dir import ModelDir

logger = logging.getLogger(__name__)


def _quality(dataset: IntentDataset, split: str, logits: np.ndarray, threshold: float = 0.0) -> tuple[dict[str, float], np.ndarray]:
    y_true = dataset.label_ids(split)
    y_pred, _ = decide(logits, dataset.refusal_label_id, threshold)
    metrics = classification_metrics(y_true, y_pred, len(dataset.labels), dataset.rare_label_ids, dataset.refusal_label_id)
    metrics["rows"] = float(len(y_true))
    if threshold > 0:
        metrics["refusal_threshold"] = threshold
    return metrics, confusion(y_true, y_pred, len(dataset.labels))


def evaluate_model_dir(
    model_dir: ModelDir, dataset: IntentDataset, split: str = "gate", refusal: RefusalConfig | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of runbook 4.2/6.10 on `split` (plus size and parameters), and the confusion matrix (true x predicted).

    With ``refusal.calibrate_threshold`` a refusal threshold is first calibrated on the validation split
    (reported as ``refusal_threshold`` and ``val_refusal_recall``) and applied to `split`.
    """
    from mangadistill.models.encoders import load_model_dir
    from mangadistill.training.loop import predict_logits

    model, tokenizer = load_model_dir(model_dir)
    max_length = int(model_dir.card["max_length"])
    role = model_dir.card["role"]
    calibration: dict[str, float] = {}
    threshold = 0.0
    if refusal is not None and refusal.calibrate_threshold and dataset.refusal_label_id is not None:
        val_logits = predict_logits(model, tokenizer, dataset.texts("val"), max_length, desc=f"calibrate {role}")
        choice = calibrate_refusal_threshold(val_logits, dataset.label_ids("val"), dataset.refusal_label_id,
                                             refusal.target_recall)
        threshold = choice.threshold
        calibration = {"val_refusal_recall": choice.refusal_recall, "val_in_scope_accuracy": choice.in_scope_accuracy}
        logger.info("%s: %s", role, choice.reason)
    logits = predict_logits(model, tokenizer, dataset.texts(split), max_length, desc=f"evaluate {role}")
    metrics, matrix = _quality(dataset, split, logits, threshold)
    metrics.update(calibration)
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
    return _quality(dataset, split, logits, float(bundle.card.get("refusal_threshold", 0.0)))
