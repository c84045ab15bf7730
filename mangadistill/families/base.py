"""What a model family declares to travel the shared life cycle (register -> gates -> staging -> shadow ->
staged rollout -> production -> monitor -> rollback, served from the registry).

The life-cycle code (`mangadistill.lifecycle`) knows no model type: it asks the family for its defaults
(gates, shadow gates, rollback triggers), for a loaded version (`load`), for the comparison of two
versions' answers on the same traffic (`compare`), for quality on labelled traffic (`observe`), and,
optionally, for a first production model when the registry has none (`bootstrap`). A new family
implements this class and calls `mangadistill.families.register_family`; it changes no life-cycle module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pandas as pd
from pydantic import BaseModel

from mangadistill.config.base import StrictModel
from mangadistill.config.lifecycle import GateSpec, TriggerSpec

if TYPE_CHECKING:  # import cycles: the life cycle imports families at run time
    from mangadistill.lifecycle.record import VersionRecord
    from mangadistill.lifecycle.shadow import Replay
    from mangadistill.traffic import TrafficLog

#: One answer of a model to one request, as JSON-able key -> value (e.g. {"intent": ..., "confidence": ...}).
Answer = dict[str, Any]


class Predictor(Protocol):
    """A loaded registry version: one answer per text, in order."""

    def predict(self, texts: list[str]) -> list[Answer]: ...


class NoOptions(StrictModel):
    """A family without options of its own."""


#: Loads an artifact of the pipeline run that built a version: (run name, step, output) -> (object, artifact id).
FetchArtifact = Callable[[str, str, str], Any]


class Family(ABC):
    """A model family: its registered model, gates, shadow comparison, triggers and serving."""

    #: Short name used in configs (`family: intent`) and on every version's record.
    name: ClassVar[str]
    #: The MLflow registered model its versions belong to by default (a config may name another one).
    model_name: ClassVar[str]
    #: One line for `--help` and summaries.
    description: ClassVar[str] = ""
    #: Settings of this family in a life-cycle config's `options:` block (validated with this model).
    options_model: ClassVar[type[BaseModel]] = NoOptions
    #: Benchmark metrics the rollback triggers compare against: a version without them cannot be watched.
    monitored_metrics: ClassVar[tuple[str, ...]] = ()

    # --------------------------------------------------------------------------------- defaults
    @abstractmethod
    def default_offline_gates(self) -> dict[str, GateSpec]:
        """Gates on the version's approved benchmark and the promotion checklist (runbook 15.1)."""

    @abstractmethod
    def default_shadow_gates(self) -> dict[str, GateSpec]:
        """Gates on the shadow comparison's metrics (`compare` plus the life cycle's latency metrics)."""

    @abstractmethod
    def default_triggers(self) -> dict[str, TriggerSpec]:
        """Rollback triggers: observed metric name -> rule against a benchmark metric."""

    # ------------------------------------------------------------------------------ behaviour
    @abstractmethod
    def load(self, name: str, version: str, record: VersionRecord, num_threads: int | None = None) -> Predictor:
        """Load version `version` of `name` for prediction, as the approved benchmark timed it."""

    def known_labels(self, predictor: Predictor) -> Sequence[str] | None:
        """Values a traffic log's `label` column may hold (others are quarantined); None accepts any."""
        return None

    @abstractmethod
    def compare(self, production: Replay, staging: Replay, traffic: TrafficLog,
                options: BaseModel) -> tuple[dict[str, float], pd.DataFrame]:
        """Shadow metrics (e.g. ``agreement_rate``) and the disagreement bucket for human review."""

    @abstractmethod
    def observe(self, replay: Replay, traffic: TrafficLog, options: BaseModel) -> dict[str, float]:
        """Quality of production on (labelled) traffic, named like the triggers' observed metrics."""

    def shadow_event(self, metrics: dict[str, float], *, model_name: str, staging_version: str,
                     production_version: str, production_role: str) -> dict[str, Any]:
        """The runbook 11.4 `online_shadow_compare` event; families add their own rates."""
        return {"event": "online_shadow_compare", "family": self.name,
                "shadow_student": f"{model_name}/{staging_version}",
                f"control_{production_role}": f"{model_name}/{production_version}",
                "sample_size": int(metrics.get("sample_size", 0)),
                "student_p95_latency_ms": round(metrics["staging_p95_latency_ms"], 3),
                f"{production_role}_p95_latency_ms": round(metrics["production_p95_latency_ms"], 3)}

    def bootstrap(self, name: str, candidate: VersionRecord, fetch: FetchArtifact) -> str | None:
        """Register a first production model when the registry has none (e.g. the candidate's teacher).

        Returns the registered version, or None when the family has no such model (promotion then
        stages the candidate but cannot shadow it). `fetch` loads artifacts of the candidate's run.
        """
        return None
