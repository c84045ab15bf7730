"""Tiny random-weight intent classifiers (MangaAssist labels) registered in a real MLflow registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.export.onnx import export_onnx, serving_copy
from mangadistill.lifecycle.record import Provenance, VersionRecord
from mangadistill.models.model_dir import ModelDir
from mangadistill.registry.register import register_classifier
from tests.tiny_models import tiny_classifier

#: The approved benchmark of a promotable student (what distill_intent's register_student records),
#: passing the intent family's default gates.
GOOD_BENCHMARK = {"accuracy": 0.93, "macro_f1": 0.92, "rare_class_recall": 0.875, "refusal_precision": 0.96,
                  "refusal_recall": 1.0, "latency_p95_ms": 4.0, "service_p95_ms": 3.8, "p95_ratio_vs_teacher": 0.2,
                  "cold_start_ms": 300.0, "cost_reduction": 0.6}


def tiny_onnx_classifier(root: Path, seed: int) -> ModelDir:
    """A 1-layer, 32-wide BERT over the MiniLM vocabulary with the ten MangaAssist intents, as an ONNX folder."""
    pytorch, _, _ = tiny_classifier(root / f"torch-{seed}", list(MANGA_INTENTS), seed=seed)
    return serving_copy(export_onnx(pytorch, root / f"bundle-{seed}"), "onnx_fp32", root / f"served-{seed}")


@contextmanager
def throwaway_store(root: Path, experiment: str) -> Iterator[str]:
    """Point this process's MLflow at a SQLite store under `root` (experiment `experiment`), then back."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        use_experiment(experiment, root / "artifacts")
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.set_experiment("Default")  # do not leave this store's experiment active for later tests


def use_experiment(name: str, artifacts: Path) -> None:
    """Log to experiment `name` with its artifacts under `artifacts` (not ./mlruns of the working directory)."""
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(name)


def register(model_dir: ModelDir, name: str, source_id: str, role: str = "student", **benchmark: float) -> str:
    """Register `model_dir` as an intent version with `GOOD_BENCHMARK` (entries overridden by `benchmark`)."""
    record = VersionRecord(family="intent", role=role, served_variant="onnx_fp32", serving_threads=1,
                           provenance=Provenance(source_id=source_id), benchmark={**GOOD_BENCHMARK, **benchmark})
    with mlflow.start_run():
        return register_classifier(model_dir, name, record).version
