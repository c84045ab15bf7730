"""The MLflow pyfunc that serves a registered intent classifier: raw strings in, intent + confidence out.

The model folder's card says how to run it: ``format: onnx`` folders are served with onnxruntime and
`tokenizers` only (torch is never imported); other folders are Hugging Face PyTorch checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

from mangadistill.models.decision import card_refusal_rule
from mangadistill.models.model_dir import MODEL_CARD

MODEL_ARTIFACT = "model_dir"
OUTPUT_COLUMNS = ("intent", "confidence")


def _as_texts(model_input: Any) -> list[str]:
    """Accept a string, a list of strings, a pandas Series, or a one-column DataFrame."""
    import pandas as pd

    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] != 1:
            raise ValueError(f"expected a one-column DataFrame of query texts, got columns {list(model_input.columns)}")
        return model_input.iloc[:, 0].astype(str).tolist()
    if isinstance(model_input, pd.Series):
        return model_input.astype(str).tolist()
    return [str(text) for text in model_input]


class _TorchClassifier:
    """A Hugging Face checkpoint folder served with PyTorch (imported only here)."""

    def __init__(self, path: Path, max_length: int) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        self._max_length = max_length

    def logits(self, texts: list[str]) -> np.ndarray:
        with self._torch.inference_mode():
            batch = self._tokenizer(texts, truncation=True, max_length=self._max_length, padding=True,
                                    return_tensors="pt")
            return self._model(**batch).logits.float().numpy()


class IntentClassifierPyfunc(mlflow.pyfunc.PythonModel):
    """Tokenise, run the saved classifier, return a DataFrame with one (intent, confidence) row per query."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        path = Path(context.artifacts[MODEL_ARTIFACT])
        card = json.loads((path / MODEL_CARD).read_text(encoding="utf-8"))
        self._labels = list(card["labels"])
        self._refusal = card_refusal_rule(card)  # (refusal id, threshold)
        if card.get("format") == "onnx":
            from mangadistill.export.onnx import OnnxClassifier

            self._classifier = OnnxClassifier(path)
        else:
            self._classifier = _TorchClassifier(path, int(card["max_length"]))

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would reinterpret them
        """``intent`` and ``confidence`` (top softmax probability) for each query."""
        import pandas as pd

        from mangadistill.models.decision import decide

        texts = _as_texts(model_input)
        if not texts:
            return pd.DataFrame({"intent": pd.Series(dtype=str), "confidence": pd.Series(dtype=float)})
        predictions, confidence = decide(np.asarray(self._classifier.logits(texts)), *self._refusal)
        return pd.DataFrame({"intent": [self._labels[i] for i in predictions], "confidence": confidence})
