"""The MLflow pyfunc that serves a registered intent classifier: raw strings in, intent + confidence out.

The model folder's card says how to run it: ``format: onnx`` folders are served with onnxruntime and
`tokenizers` only (torch is never imported), on the card's ``serving_threads`` (the thread count the
version was benchmarked and gated with); other folders are Hugging Face PyTorch checkpoints.

``predict`` is typed (``list[str]`` in, one ``{"intent", "confidence"}`` dict per query out), so MLflow
validates the input against the type hint instead of converting it to a DataFrame and enforcing a column
schema, and the answer is built without pandas: on one query those two cost as much as an INT8 graph's
forward pass (`benchmarks/run_benchmarks.py` reports graph and pyfunc time side by side). A one-column
DataFrame is still accepted (MLflow turns it into the list).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

from mangadistill.models.decision import card_refusal_rule
from mangadistill.models.model_dir import MODEL_CARD

MODEL_ARTIFACT = "model_dir"


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
    """Tokenise, run the saved classifier, return one ``{"intent", "confidence"}`` dict per query."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        path = Path(context.artifacts[MODEL_ARTIFACT])
        card = json.loads((path / MODEL_CARD).read_text(encoding="utf-8"))
        self._labels = list(card["labels"])
        self._refusal = card_refusal_rule(card)  # (refusal id, threshold)
        if card.get("format") == "onnx":
            from mangadistill.export.onnx import OnnxClassifier

            self._classifier = OnnxClassifier(path, num_threads=card.get("serving_threads") or None)
        else:
            self._classifier = _TorchClassifier(path, int(card["max_length"]))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without what `load_context` builds (an onnxruntime session cannot be pickled): MLflow runs the
        input example through a loaded copy when it logs the model, then pickles it."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_labels", "_refusal", "_classifier")}

    def predict(self, context, model_input: list[str], params: dict[str, Any] | None = None):
        """One ``{"intent": str, "confidence": float}`` (top softmax probability) per query. The input is typed
        (MLflow validates it); the output is not, since MLflow can only call a dict of mixed values ``Any``."""
        from mangadistill.models.decision import decide

        if not model_input:
            return []
        predictions, confidence = decide(np.asarray(self._classifier.logits(model_input)), *self._refusal)
        return [{"intent": self._labels[i], "confidence": float(c)} for i, c in zip(predictions, confidence, strict=True)]


# MLflow reads `predict`'s signature with `inspect.signature` on every call (to see whether it takes `context`
# and `params`); a stored `__signature__` is what `inspect` returns first (MLflow's own per-call cost: 63 -> 57 us
# on the 2-core Xeon, against ~1 ms for the INT8 graph). The signature is the method's own, computed once.
IntentClassifierPyfunc.predict.__signature__ = inspect.signature(IntentClassifierPyfunc.predict)
