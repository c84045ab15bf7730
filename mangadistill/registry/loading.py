"""Load a registered version's classifier directly (ONNX or PyTorch), as `benchmark_serving` timed it.

Shadow and monitoring compare latencies with the approved benchmark, so they run the same call the
benchmark timed (tokenise + forward on one query) rather than the pyfunc wrapper (which adds pandas).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import Model

from mangadistill.models.decision import card_refusal_rule, decide
from mangadistill.models.model_dir import ModelDir
from mangadistill.registry.pyfunc import MODEL_ARTIFACT


@dataclass
class VersionClassifier:
    """A registered version, loaded: `logits(texts)` -> (B, C) and its label names."""

    name: str
    version: str
    labels: list[str]
    model_format: str
    logits: object  # Callable[[list[str]], np.ndarray]
    refusal_id: int | None = None
    refusal_threshold: float = 0.0  # refuse below this top probability (from the model card)

    def predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """Intent and top-class probability per text."""
        predictions, confidence = decide(self.logits(texts), self.refusal_id, self.refusal_threshold)
        return [self.labels[i] for i in predictions], confidence


def download_model_dir(name: str, version: str, dst: str | Path | None = None) -> ModelDir | None:
    """The classifier folder logged with a registered version (downloaded from the artifact store), or None
    when the version is some other pyfunc (not an `IntentClassifierPyfunc`)."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                                     dst_path=None if dst is None else str(dst)))
    artifacts = Model.load(str(local)).flavors.get("python_function", {}).get("artifacts") or {}
    if MODEL_ARTIFACT not in artifacts:
        return None
    return ModelDir(str(local / artifacts[MODEL_ARTIFACT]["path"]))


@dataclass
class PyfuncClassifier:
    """Any registered pyfunc that follows the intent serving contract: texts in, one ``{intent, confidence}``
    per text out (a list of dicts, or a DataFrame with those columns)."""

    name: str
    version: str
    model: object  # mlflow.pyfunc.PyFuncModel

    def predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        output = self.model.predict(list(texts))
        if hasattr(output, "columns") and {"intent", "confidence"} <= set(output.columns):
            return output["intent"].astype(str).tolist(), output["confidence"].astype(float).to_numpy()
        if isinstance(output, list) and all(isinstance(o, dict) and {"intent", "confidence"} <= set(o) for o in output):
            return [str(o["intent"]) for o in output], np.array([float(o["confidence"]) for o in output])
        found = list(output.columns) if hasattr(output, "columns") else type(output).__name__
        raise ValueError(f"models:/{self.name}/{self.version} returned {found}; the intent serving contract is one "
                         "{'intent', 'confidence'} per text (a list of dicts or a DataFrame with those columns)")


def load_version_classifier(name: str, version: str,
                            num_threads: int | None = None) -> VersionClassifier | PyfuncClassifier:
    """Load version `version` of `name` for timing and scoring (onnxruntime or torch, as registered; another
    pyfunc that follows the intent serving contract through MLflow)."""
    model_dir = download_model_dir(name, version)
    if model_dir is None:
        return PyfuncClassifier(name, str(version), mlflow.pyfunc.load_model(f"models:/{name}/{version}"))
    card = model_dir.card
    if card.get("format") == "onnx":
        from mangadistill.export.onnx import OnnxClassifier

        classifier = OnnxClassifier(model_dir.path, num_threads=num_threads)
        return VersionClassifier(name, str(version), classifier.labels, "onnx", classifier.logits,
                                 *card_refusal_rule(card))
    import torch

    from mangadistill.models.encoders import load_model_dir

    if num_threads:
        torch.set_num_threads(num_threads)
    model, tokenizer = load_model_dir(model_dir)
    max_length = int(card["max_length"])

    @torch.inference_mode()
    def logits(texts: list[str]) -> np.ndarray:
        batch = tokenizer(list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        return model(**batch).logits.float().numpy()

    return VersionClassifier(name, str(version), list(card["labels"]), "pytorch", logits, *card_refusal_rule(card))
