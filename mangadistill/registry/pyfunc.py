"""The MLflow pyfunc that serves a registered intent classifier: raw strings in, intent labels out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from mangadistill.models.model_dir import MODEL_CARD

MODEL_ARTIFACT = "model_dir"


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


class IntentClassifierPyfunc(mlflow.pyfunc.PythonModel):
    """Tokenise with the saved tokenizer, run the saved classifier, return one label per query."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(context.artifacts[MODEL_ARTIFACT])
        card = json.loads((path / MODEL_CARD).read_text(encoding="utf-8"))
        self._labels = list(card["labels"])
        self._max_length = int(card["max_length"])
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        self._torch = torch

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would reinterpret them
        """Labels for a string, a list of strings, a Series or a one-column DataFrame."""
        texts = _as_texts(model_input)
        if not texts:
            return []
        with self._torch.inference_mode():
            batch = self._tokenizer(texts, truncation=True, max_length=self._max_length, padding=True, return_tensors="pt")
            ids = self._model(**batch).logits.argmax(-1).tolist()
        return [self._labels[i] for i in ids]
