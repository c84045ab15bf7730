"""Gate-set evaluation of a saved classifier: quality metrics, confusion matrix, latency, size."""

from __future__ import annotations

import numpy as np
import torch

from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.latency import measure_latency_ms, torch_single_query
from mangadistill.evaluation.metrics import classification_metrics, confusion
from mangadistill.models.encoders import ModelDir, load_model_dir
from mangadistill.training.loop import predict_logits


def evaluate_model_dir(
    model_dir: ModelDir,
    dataset: IntentDataset,
    *,
    latency_queries: int,
    latency_warmup: int,
    num_threads: int | None = None,
    split: str = "gate",
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of runbook 4.2/6.10 on `split`, and the confusion matrix (true x predicted)."""
    model, tokenizer = load_model_dir(model_dir)
    max_length = int(model_dir.card["max_length"])
    texts = dataset.texts(split)
    y_true = dataset.label_ids(split)
    logits = predict_logits(model, tokenizer, texts, max_length, desc=f"evaluate {model_dir.card['role']}")
    y_pred = logits.argmax(-1)
    metrics = classification_metrics(y_true, y_pred, len(dataset.labels), dataset.rare_label_ids, dataset.refusal_label_id)
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        metrics.update(
            measure_latency_ms(torch_single_query(model, tokenizer, max_length), texts, latency_queries, latency_warmup)
        )
    finally:
        torch.set_num_threads(previous_threads)
    metrics["latency_threads"] = num_threads or previous_threads
    metrics["size_mb"] = model_dir.size_mb()
    metrics["num_parameters"] = float(model_dir.card["num_parameters"])
    metrics["rows"] = float(len(texts))
    return metrics, confusion(y_true, y_pred, len(dataset.labels))
