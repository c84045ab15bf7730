"""The MLflow pyfunc of a registered reranker, and the family's loader of a registered version.

Input: a string or a list of strings (queries: candidates come from the bundled corpus), or a DataFrame
with a ``query`` column and, optionally, a ``candidates`` column (a list of passage texts per row).
Output: one dict per query, ``{"order": [...], "scores": [...]}`` for given candidates (indices best
first, scores in the candidates' order), or `Reranker.predict`'s answer for a bare query.
"""

from __future__ import annotations

from importlib.metadata import version as package_version
from pathlib import Path

import mlflow.pyfunc

from mangadistill.registry.register import PACKAGE_DIR, SERVING_PACKAGES
from mangadistill.response.pyfunc import download_artifacts

__all__ = ["MODEL_ARTIFACT", "RerankerPyfunc", "load_registered_reranker", "log_reranker"]

MODEL_ARTIFACT = "reranker_dir"


class RerankerPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from mangadistill.reranker.serving import load_reranker_folder

        self._reranker = load_reranker_folder(context.artifacts[MODEL_ARTIFACT])

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would validate them as a schema
        import pandas as pd

        if isinstance(model_input, str):
            return self._reranker.predict([model_input])
        if not isinstance(model_input, pd.DataFrame):
            return self._reranker.predict([str(q) for q in model_input])
        query_column = "query" if "query" in model_input.columns else model_input.columns[0]
        answers = []
        for i, query in enumerate(model_input[query_column].astype(str)):
            candidates = model_input["candidates"].iloc[i] if "candidates" in model_input.columns else None
            if candidates is None or (not isinstance(candidates, (list, tuple)) and pd.isna(candidates)):
                answers.extend(self._reranker.predict([query]))
            else:
                scores, order = self._reranker.rerank(query, [str(c) for c in candidates])
                answers.append({"order": order, "scores": scores})
        return answers


def log_reranker(folder: str | Path, registered_model_name: str, model_format: str):
    """Log a reranker folder as a pyfunc in the active run and register it (returns MLflow's `ModelInfo`)."""
    return mlflow.pyfunc.log_model(
        name="reranker",
        python_model=RerankerPyfunc(),
        artifacts={MODEL_ARTIFACT: str(folder)},
        code_paths=[str(PACKAGE_DIR)],
        pip_requirements=[f"{pkg}=={package_version(pkg)}" for pkg in SERVING_PACKAGES[model_format]],
        registered_model_name=registered_model_name,
    )


def load_registered_reranker(name: str, version: str, num_threads: int | None = None):
    """Version `version` of `name` as a `Reranker` (ONNX or PyTorch, as registered), from the artifact store."""
    from mangadistill.reranker.serving import load_reranker_folder

    artifacts = download_artifacts(name, version)
    if MODEL_ARTIFACT not in artifacts:
        raise ValueError(f"not a reranker version: artifacts {sorted(artifacts)} lack '{MODEL_ARTIFACT}'")
    return load_reranker_folder(artifacts[MODEL_ARTIFACT], num_threads=num_threads)
