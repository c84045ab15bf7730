"""A model family defined only in the tests: it proves a new family travels the whole life cycle
(register -> gates -> staging -> shadow -> rollout -> production -> monitor -> rollback) through the
generic pipelines without any change to `mangadistill.lifecycle`.

The "model" labels a query ``long`` when it has more than `threshold` characters, else ``short``; a
version is a pyfunc holding its threshold. The family has its own metric (``exact_match``: agreement
with the rule ``len(text) > 24``), its own gate on it, its own shadow comparison (``label_agreement``),
its own trigger (``long_rate`` may not rise more than 50 % over the benchmark) and a bootstrap model
(threshold 10,000: every query is short).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from pydantic import Field

from mangadistill.config.base import StrictModel
from mangadistill.config.lifecycle import GateSpec, TriggerSpec
from mangadistill.families import Family, register_family
from mangadistill.lifecycle.record import BASELINE, Provenance, VersionRecord
from mangadistill.lifecycle.registration import register_version

MODEL_NAME = "test-length-classifier"
REFERENCE_THRESHOLD = 24


class LengthOptions(StrictModel):
    long_label: str = Field("long", min_length=1)


class _Pyfunc(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # only for mlflow.pyfunc users; the family loads the json
        threshold = json.loads(Path(context.artifacts["threshold"]).read_text())["threshold"]
        return ["long" if len(str(t)) > threshold else "short" for t in model_input]


class _Predictor:
    def __init__(self, threshold: int, long_label: str = "long") -> None:
        self.threshold, self.long_label = threshold, long_label

    def predict(self, texts: list[str]) -> list[dict]:
        return [{"label": self.long_label if len(t) > self.threshold else "short", "threshold": self.threshold}
                for t in texts]


def exact_match(threshold: int, texts: list[str]) -> float:
    """Share of texts the model labels as the reference rule does."""
    return float(np.mean([(len(t) > threshold) == (len(t) > REFERENCE_THRESHOLD) for t in texts]))


def register_length_model(name: str, threshold: int, folder: Path, role: str = "student", **benchmark: float) -> str:
    """Register a threshold model as a version of `name` (in a run of its own)."""
    folder.mkdir(parents=True, exist_ok=True)
    artifact = folder / f"threshold-{threshold}-{role}.json"
    artifact.write_text(json.dumps({"threshold": threshold}))
    record = VersionRecord(family=LengthFamily.name, role=role, served_variant="python",
                           provenance=Provenance(source_id=f"length:{threshold}:{role}"),
                           benchmark={"exact_match": 1.0, "long_rate": 0.5, "latency_p95_ms": 1.0, **benchmark})

    def log_model():
        return mlflow.pyfunc.log_model(name="length_model", python_model=_Pyfunc(),
                                       artifacts={"threshold": str(artifact)}, registered_model_name=name,
                                       pip_requirements=["mlflow"])

    with mlflow.start_run(nested=mlflow.active_run() is not None):
        return register_version(name, record, log_model, description=f"length threshold {threshold}").version


class LengthFamily(Family):
    name = "length"
    model_name = MODEL_NAME
    description = "test family: long/short by a length threshold"
    options_model = LengthOptions
    monitored_metrics = ("long_rate",)

    def default_offline_gates(self) -> dict[str, GateSpec]:
        return {"exact_match": GateSpec(category="quality", metric="exact_match", min=0.8),
                "rollback_target": GateSpec(category="rollback", metric="rollback_target_available", min=1.0),
                "observability": GateSpec(category="observability", metric="monitoring_baseline_complete", min=1.0)}

    def default_shadow_gates(self) -> dict[str, GateSpec]:
        return {"label_agreement": GateSpec(category="shadow", metric="label_agreement", min=0.0),
                "latency": GateSpec(category="shadow", metric="staging_p95_latency_ms", max=1000.0)}

    def default_triggers(self) -> dict[str, TriggerSpec]:
        return {"long_rate": TriggerSpec(benchmark="long_rate", max_rise_fraction=0.5)}

    def load(self, name, version, record, num_threads=None):
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
        threshold = json.loads(next(local.rglob("threshold-*.json")).read_text())["threshold"]
        return _Predictor(threshold)

    def compare(self, production, staging, traffic, options):
        produced, shadowed = production.column("label"), staging.column("label")
        agree = np.asarray(produced) == np.asarray(shadowed)
        bucket = pd.DataFrame({"text": traffic.rows["text"], "production": produced, "staging": shadowed})[~agree]
        return {"sample_size": float(len(agree)), "label_agreement": float(agree.mean())}, bucket.reset_index(drop=True)

    def observe(self, replay, traffic, options):
        return {"long_rate": float(np.mean([label == options.long_label for label in replay.column("label")]))}

    def bootstrap(self, name, candidate, fetch):
        import tempfile

        return register_length_model(name, 10_000, Path(tempfile.mkdtemp(prefix="length-baseline-")), role=BASELINE,
                                     exact_match=0.0, long_rate=0.0)


register_family(LengthFamily())
