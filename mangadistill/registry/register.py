"""Registering a trained classifier as a version of an MLflow registered model."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from mangadistill.models.model_dir import ModelDir
from mangadistill.registry.pyfunc import MODEL_ARTIFACT, IntentClassifierPyfunc

#: Runtime requirements of the pyfunc per model format, pinned to what built it (no slow requirement inference).
SERVING_PACKAGES = {
    "onnx": ("mlflow", "onnxruntime", "tokenizers", "numpy", "pandas"),
    "pytorch": ("mlflow", "torch", "transformers", "tokenizers", "numpy", "pandas", "safetensors"),
}
PACKAGE_DIR = Path(__file__).resolve().parents[1]

SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string")]),
                           outputs=Schema([ColSpec("string", "intent"), ColSpec("double", "confidence")]))


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    reused: bool

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def find_version_by_tag(client: MlflowClient, name: str, key: str, value: str) -> str | None:
    """The newest version of `name` whose tag `key` equals `value`, if any."""
    versions = client.search_model_versions(f"name = '{name}' and tag.`{key}` = '{value}'")
    newest = max((int(v.version) for v in versions), default=None)
    return None if newest is None else str(newest)


def register_classifier(
    model_dir: ModelDir,
    model_name: str,
    *,
    source_id: str,
    tags: dict[str, str],
    description: str = "",
) -> RegisteredVersion:
    """Log `model_dir` as a pyfunc in the active run and register it as a new version of `model_name`.

    `source_id` identifies what is registered (the ZenML artifact version of the checkpoint): if a
    version with that `source_id` tag already exists it is reused, so re-running a cached pipeline
    does not create duplicate versions of the same weights.
    """
    client = MlflowClient()
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_classifier needs an active MLflow run (the experiment tracker opens one)")
    if _exists(client, model_name):
        existing = find_version_by_tag(client, model_name, "source_id", source_id)
        if existing is not None:
            return RegisteredVersion(model_name, str(existing), run.info.run_id, reused=True)
    info = mlflow.pyfunc.log_model(
        name="intent_classifier",
        python_model=IntentClassifierPyfunc(),
        artifacts={MODEL_ARTIFACT: model_dir.path},
        code_paths=[str(PACKAGE_DIR)],
        pip_requirements=[f"{pkg}=={package_version(pkg)}" for pkg in SERVING_PACKAGES[model_format(model_dir)]],
        signature=SIGNATURE,
        input_example=["is volume 3 of frieren in stock?"],
        registered_model_name=model_name,
    )
    version = str(info.registered_model_version)
    for key, value in {**tags, "source_id": source_id}.items():
        client.set_model_version_tag(model_name, version, key, value)
    if description:
        client.update_model_version(model_name, version, description=description)
    return RegisteredVersion(model_name, version, run.info.run_id, reused=False)


def model_format(model_dir: ModelDir) -> str:
    """``onnx`` for an ONNX folder, else ``pytorch`` (a Hugging Face checkpoint)."""
    return "onnx" if model_dir.card.get("format") == "onnx" else "pytorch"


def _exists(client: MlflowClient, name: str) -> bool:
    return bool(client.search_registered_models(f"name = '{name}'"))
