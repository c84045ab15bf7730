"""The MLflow pyfunc of a registered responder, and how a version is logged and loaded.

A version holds one of:

- ``model``: a merged Hugging Face causal-LM folder (the distilled student; its LoRA adapter travels inside it,
  under ``adapter/``, for audit and re-merging), answered with `HFChatModel`;
- ``reference``: a small JSON naming the reference teacher (the bootstrap production model: holds no weights);
- ``endpoint``: a small JSON naming an OpenAI-compatible endpoint and model id (a managed fine-tune: holds no
  weights; answered through chat completions with the key in the named environment variable).

``mlflow.pyfunc.load_model(uri).predict(["how much is Berserk?"])`` returns one dict per prompt (answer, action,
unsupported claims); a DataFrame with ``prompt`` (and optionally ``context``, a list of context lines) works too.
The life cycle and the server skip the pandas wrapper and call `load_responder` directly.
"""

from __future__ import annotations

from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow.models import Model

from mangadistill.models.model_dir import read_card
from mangadistill.response.responder import GroundedResponder

MODEL_ARTIFACT = "model"
REFERENCE_ARTIFACT = "reference"
ENDPOINT_ARTIFACT = "endpoint"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SERVING_PACKAGES = ("mlflow", "torch", "transformers", "tokenizers", "numpy", "pandas", "safetensors",
                    "scikit-learn", "peft", "openai")


def responder_from_artifacts(artifacts: dict[str, str], *, threads: int | None = None, context_k: int = 3,
                             max_new_tokens: int = 96) -> GroundedResponder:
    """Build the served responder from a version's local artifact paths."""
    if MODEL_ARTIFACT in artifacts:
        from mangadistill.response.generation import HFChatModel

        card = read_card(Path(artifacts[MODEL_ARTIFACT]))
        chat = HFChatModel(Path(artifacts[MODEL_ARTIFACT]), name=card.get("name", "mangaassist-responder"),
                           threads=threads)
    elif ENDPOINT_ARTIFACT in artifacts:
        import json

        from mangadistill.finetune.workflow import EndpointChatModel, ManagedEndpoint

        spec = json.loads(Path(artifacts[ENDPOINT_ARTIFACT]).read_text(encoding="utf-8"))
        endpoint = ManagedEndpoint(spec["base_url"], spec["api_key_env"], timeout_s=spec.get("timeout_s", 120.0),
                                   max_retries=spec.get("max_retries", 5))
        chat = EndpointChatModel(endpoint, spec["model"])
    elif REFERENCE_ARTIFACT in artifacts:
        from mangadistill.response.reference_teacher import ReferenceTeacher

        chat = ReferenceTeacher()
    else:
        raise ValueError(f"not a responder version: artifacts {sorted(artifacts)} hold none of "
                         f"'{MODEL_ARTIFACT}', '{ENDPOINT_ARTIFACT}', '{REFERENCE_ARTIFACT}'")
    return GroundedResponder(chat, context_k=context_k, max_new_tokens=max_new_tokens)



class ResponderPyfunc(mlflow.pyfunc.PythonModel):
    """Shopper prompts in, one answer dict per prompt out (see the module docstring)."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self._responder = responder_from_artifacts(dict(context.artifacts))

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would validate them as a schema
        import pandas as pd

        if isinstance(model_input, str):
            return [self._responder.answer(model_input)]
        if isinstance(model_input, pd.DataFrame):
            if "prompt" not in model_input.columns:
                model_input = model_input.rename(columns={model_input.columns[0]: "prompt"})
            contexts = (model_input["context"].tolist() if "context" in model_input.columns
                        else [None] * len(model_input))
            return [self._responder.answer(str(p), None if c is None else list(c))
                    for p, c in zip(model_input["prompt"], contexts, strict=True)]
        return [self._responder.answer(str(prompt)) for prompt in model_input]


def log_responder(artifacts: dict[str, str], registered_model_name: str):
    """Log a responder pyfunc in the active run and register it (returns MLflow's `ModelInfo`)."""
    return mlflow.pyfunc.log_model(
        name="responder",
        python_model=ResponderPyfunc(),
        artifacts=artifacts,
        code_paths=[str(PACKAGE_DIR)],
        pip_requirements=[f"{pkg}=={package_version(pkg)}" for pkg in SERVING_PACKAGES],
        registered_model_name=registered_model_name,
    )


def download_artifacts(name: str, version: str) -> dict[str, str]:
    """A registered version's pyfunc artifacts, downloaded: artifact name -> local path."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}"))
    artifacts = Model.load(str(local)).flavors.get("python_function", {}).get("artifacts") or {}
    return {key: str(local / spec["path"]) for key, spec in artifacts.items()}
