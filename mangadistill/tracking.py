"""MLflow logging helpers shared by steps: grouped run metrics, per-epoch metrics and the runbook 11.2 epoch event.

Run metrics are named ``<group>/<name>`` (``gate/student_accuracy``, ``serving/p95_ratio``): the MLflow UI
sections a run's charts by the part before the ``/``. The one exception is Stage 2's epoch metrics, which keep
the runbook 11.2 names unprefixed (``loss_kd``, ``val_accuracy``, ...).

These use the active MLflow run (the ZenML experiment tracker opens it); nothing here imports zenml.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping

import mlflow
import torch

logger = logging.getLogger("mangadistill")

#: Keys of the `distill_epoch_end` event (runbook 11.2) and the epoch metric each one comes from.
EPOCH_EVENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("loss_total", "loss_total"),
    ("loss_ce", "loss_hard"),
    ("loss_kd", "loss_kd"),
    ("val_accuracy", "val_accuracy"),
    ("rare_class_recall", "rare_class_recall"),
    ("refusal_precision", "refusal_precision"),
    ("throughput_seq_per_sec", "samples_per_sec"),
)

#: Stage 1 (feature/attention transfer) metrics added to its events.
STAGE1_EVENT_FIELDS = ("loss_feature", "loss_attention", "loss_probe", "probe_val_accuracy")


def _finite(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 6)


def grouped(group: str, metrics: Mapping[str, float | None]) -> dict[str, float]:
    """``{"<group>/<name>": value}`` for each value that is not None or NaN; an empty group keeps the names."""
    if group.startswith("/") or group.endswith("/"):
        raise ValueError(f"metric group {group!r} must not start or end with '/': pass e.g. 'gate', not 'gate/'")
    return {f"{group}/{name}" if group else name: float(value) for name, value in metrics.items()
            if value is not None and not math.isnan(float(value))}


def log_grouped(group: str, metrics: Mapping[str, float | None], step: int | None = None) -> dict[str, float]:
    """Log `metrics` to the active MLflow run as ``<group>/<name>`` (skipping None and NaN); returns what was logged."""
    loggable = grouped(group, metrics)
    if loggable:
        mlflow.log_metrics(loggable, step=step)
    return loggable


class EpochLogger:
    """Callback for `train_classifier`: logs each epoch's metrics and appends a JSON event.

    Metrics go to MLflow as ``<group>/<name>`` at step=epoch (``teacher/val_accuracy``, ``stage1/loss_feature``;
    Stage 2 passes no group and keeps the runbook 11.2 names); the events are printed to the log and kept in the
    MLflow artifact ``events/<artifact_name>`` (JSON lines, rewritten every epoch) with the event schema's own
    field names, whatever the group.
    """

    def __init__(self, *, stage: str, run_label: str, student: str, teacher: str, group: str = "",
                 artifact_name: str = "distill_epoch_end.jsonl") -> None:
        self.stage, self.run_label, self.student, self.teacher = stage, run_label, student, teacher
        self.group = group
        self.artifact_name = artifact_name
        self.events: list[dict] = []

    def __call__(self, metrics: Mapping[str, float]) -> None:
        epoch = int(metrics["epoch"])
        if torch.cuda.is_available():
            metrics = {**metrics, "gpu_mem_gb": torch.cuda.max_memory_allocated() / 1e9}
        if mlflow.active_run() is not None:
            log_grouped(self.group, {k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)
        event = {
            "event": "distill_epoch_end",
            "run_id": self.run_label,
            "stage": self.stage,
            "student": self.student,
            "teacher": self.teacher,
            "epoch": epoch,
            **{name: _finite(metrics.get(source, float("nan"))) for name, source in EPOCH_EVENT_FIELDS},
            "gpu_mem_gb": _finite(metrics["gpu_mem_gb"]) if "gpu_mem_gb" in metrics else None,
            **{key: _finite(metrics[key]) for key in STAGE1_EVENT_FIELDS if key in metrics},
        }
        self.events.append(event)
        logger.info(json.dumps(event))
        if mlflow.active_run() is not None:
            mlflow.log_text("\n".join(json.dumps(e) for e in self.events) + "\n", f"events/{self.artifact_name}")


def log_figure(figure, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG artifact of the active run and close it."""
    import matplotlib.pyplot as plt

    if mlflow.active_run() is not None:
        mlflow.log_figure(figure, artifact_file)
    plt.close(figure)


def flat_params(tree: Mapping, prefix: str = "") -> dict[str, str]:
    """Flatten a nested config dict into MLflow params: ``{"student.stage2.training.epochs": "8", ...}``."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat
