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
    DistillRerankerConfig,
    DistillResponseConfig,
    DistillResponseManagedConfig,
    DriftReportConfig,
    MonitorConfig,
    PromoteConfig,
    RollbackConfig,
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
    #: A life-cycle pipeline of any model family (`--model NAME` picks the family's registered model).
    family_generic: bool = False

    @property
    def default_config(self) -> Path:
        return CONFIG_DIR / f"{self.name}.yaml"

    def default_config_for(self, family: str) -> Path:
        """A family-generic pipeline's config for `family`: ``configs/<pipeline>_<family>.yaml``."""
        return CONFIG_DIR / f"{self.name}_{family}.yaml" if self.family_generic else self.default_config

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
            "distill_response",
            "pipelines.distill_response",
            DistillResponseConfig,
            "distil the teacher's answers into a small LoRA-tuned Llama student; rubric-evaluate; register it",
        ),
        PipelineEntry(
            "distill_response_managed",
            "pipelines.distill_response_managed",
            DistillResponseManagedConfig,
            "managed response distillation: OpenAI fine-tuning workflow at any OpenAI-compatible URL; register it",
        ),
        PipelineEntry(
            "distill_reranker",
            "pipelines.distill_reranker",
            DistillRerankerConfig,
            "distil a cross-encoder reranker teacher into a 2-3 layer ONNX INT8 student; NDCG@10 + p95; register it",
        ),
        PipelineEntry(
            "drift_report",
            "pipelines.drift_report",
            DriftReportConfig,
            "Evidently drift report: production traffic vs the training data; recommends retraining",
        ),
        PipelineEntry(
            "promote",
            "pipelines.promote",
            PromoteConfig,
            "any family (--model NAME): gates -> staging; shadow + staged rollout -> production",
            family_generic=True,
        ),
        PipelineEntry(
            "monitor",
            "pipelines.monitor",
            MonitorConfig,
            "any family (--model NAME): rollback triggers on a labelled traffic log, drift -> retraining",
            family_generic=True,
        ),
        PipelineEntry(
            "rollback",
            "pipelines.rollback",
            RollbackConfig,
            "any family (--model NAME): production back to last-known-good (or --version N)",
            family_generic=True,
        ),
        PipelineEntry(
            "promote_intent",
            "pipelines.promote_intent",
            PromoteConfig,
            "promote for the intent family: gate a version -> staging; shadow + rollout -> production",
        ),
        PipelineEntry(
            "monitor_intent",
            "pipelines.monitor_intent",
            MonitorConfig,
            "monitor for the intent family: rollback triggers, roll back to last-known-good (or recommend)",
        ),
        PipelineEntry(
            "rollback_intent",
            "pipelines.rollback_intent",
            RollbackConfig,
            "rollback for the intent family: production back to last-known-good (or --version N)",
        ),
    )
}
