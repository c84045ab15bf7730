"""Registering an intent classifier (ONNX or PyTorch folder) as a version of an MLflow registered model."""

from __future__ import annotations

from importlib.metadata import version as package_version
from pathlib import Path

import mlflow

from mangadistill.lifecycle.record import VersionRecord
from mangadistill.lifecycle.registration import RegisteredVersion, register_version
from mangadistill.models.model_dir import ModelDir
from mangadistill.registry.pyfunc import MODEL_ARTIFACT, IntentClassifierPyfunc

#: Runtime requirements of the pyfunc per model format, pinned to what built it (no slow requirement inference).
SERVING_PACKAGES = {
    "onnx": ("mlflow", "onnxruntime", "tokenizers", "numpy", "pandas"),
    "pytorch": ("mlflow", "torch", "transformers", "tokenizers", "numpy", "pandas", "safetensors"),
}
PACKAGE_DIR = Path(__file__).resolve().parents[1]

def register_classifier(model_dir: ModelDir, model_name: str, record: VersionRecord,
                        description: str = "") -> RegisteredVersion:
    """Log `model_dir` as an intent-classifier pyfunc in the active run and register it as a version of
    `model_name` with `record` (reusing the version already registered from the same weights). The signature
    comes from the pyfunc's type hints (list of strings in), which MLflow then checks without a DataFrame."""

    def log_model():
        return mlflow.pyfunc.log_model(
            name="intent_classifier",
            python_model=IntentClassifierPyfunc(),
            artifacts={MODEL_ARTIFACT: model_dir.path},
            code_paths=[str(PACKAGE_DIR)],
            pip_requirements=[f"{pkg}=={package_version(pkg)}" for pkg in SERVING_PACKAGES[model_format(model_dir)]],
            input_example=["is volume 3 of frieren in stock?"],
            registered_model_name=model_name,
        )

    return register_version(model_name, record, log_model, description)


def model_format(model_dir: ModelDir) -> str:
    """``onnx`` for an ONNX folder, else ``pytorch`` (a Hugging Face checkpoint)."""
    return "onnx" if model_dir.card.get("format") == "onnx" else "pytorch"
