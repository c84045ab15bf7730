"""The pipelines `run.py` can start, by name.

This table is read by `run.py --help`, so it must stay import-light: pipeline modules (and zenml) are
imported only when a pipeline actually runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from mangadistill.config import (
    DistillIntentConfig,
    DriftReportConfig,
    MonitorIntentConfig,
    PromoteIntentConfig,
    RollbackIntentConfig,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "configs"


@dataclass(frozen=True)
class PipelineEntry:
    """A runnable pipeline: where it lives, its config model, and what it does."""

    name: str
    module: str
    config_model: type[BaseModel]
    description: str

    @property
    def default_config(self) -> Path:
        return CONFIG_DIR / f"{self.name}.yaml"

    def load(self):
        """The pipeline module (imports zenml)."""
        return importlib.import_module(self.module)


PIPELINES: dict[str, PipelineEntry] = {
    entry.name: entry
    for entry in (
        PipelineEntry(
            "distill_intent",
            "pipelines.distill_intent",
            DistillIntentConfig,
            "distil the fine-tuned intent teacher into a small student; track in MLflow; register it",
        ),
        PipelineEntry(
            "drift_report",
            "pipelines.drift_report",
            DriftReportConfig,
            "Evidently drift report: production traffic vs the training data; recommends retraining",
        ),
        PipelineEntry(
            "promote_intent",
            "pipelines.promote_intent",
            PromoteIntentConfig,
            "gate a registered version -> staging; shadow + staged rollout -> production (old one archived)",
        ),
        PipelineEntry(
            "monitor_intent",
            "pipelines.monitor_intent",
            MonitorIntentConfig,
            "rollback triggers on a labelled traffic log; roll production back to last-known-good (or recommend)",
        ),
        PipelineEntry(
            "rollback_intent",
            "pipelines.rollback_intent",
            RollbackIntentConfig,
            "move production back by hand to last-known-good (or --version N)",
        ),
    )
}
