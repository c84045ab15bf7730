"""Registering a model as a new version of an MLflow registered model, with its record and benchmark.

Family-generic: the family says how its model is logged (`log_model`, e.g. an ONNX pyfunc); this module
reuses a version already registered from the same weights, attaches the approved benchmark to the
logged model and writes the version's record (`mangadistill.lifecycle.record`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlflow
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient

from mangadistill.lifecycle import record as records
from mangadistill.lifecycle.record import VersionRecord


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    reused: bool

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def register_version(name: str, record: VersionRecord, log_model: Callable[[], ModelInfo],
                     description: str = "") -> RegisteredVersion:
    """Log the model (in the active MLflow run) as a new version of `name`, or reuse the version that has
    the same `record.provenance.source_id`, so re-running a cached pipeline adds no duplicate version.

    `log_model` must log the model with ``registered_model_name=name`` and return MLflow's `ModelInfo`.
    """
    client = MlflowClient()
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_version needs an active MLflow run (the experiment tracker opens one)")
    source_id = record.provenance.source_id
    if source_id and client.search_registered_models(f"name = '{name}'"):
        existing = records.find_by_source(client, name, source_id)
        if existing is not None:
            return RegisteredVersion(name, existing, run.info.run_id, reused=True)
    info = log_model()
    version = str(info.registered_model_version)
    records.log_benchmark(info.model_id, run.info.run_id, record.benchmark)
    records.write_record(client, name, version, record)
    if description:
        client.update_model_version(name, version, description=description)
    return RegisteredVersion(name, version, run.info.run_id, reused=False)
