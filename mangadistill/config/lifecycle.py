"""Config of the life-cycle pipelines, for any model family: promotion (gates, shadow, rollout), monitoring
(rollback triggers, drift) and rollback.

Each config names its `family` (default ``intent``); the registered model defaults to the family's own.
Gates and triggers left out take the family's defaults (`mangadistill.families`), which are the only
place those defaults live; `options:` holds the family's own settings, validated by its options model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from mangadistill.config.base import StrictModel
from mangadistill.config.traffic import TrafficConfig


class GateSpec(StrictModel):
    """One gate: a recorded metric that must be at least `min` or at most `max` (exactly one of them)."""

    category: Literal["quality", "safety", "latency", "cost", "rollback", "observability", "shadow"] = Field(
        description="Checklist category of runbook 15.1 (shadow: the online comparison of 15.2)."
    )
    metric: str = Field(min_length=1, description="Metric the gate reads: a benchmark metric of the version "
                        "(e.g. accuracy), a checklist fact, or a shadow metric (e.g. agreement_rate).")
    min: float | None = Field(None, description="Pass when value >= min.")
    max: float | None = Field(None, description="Pass when value <= max.")
    enabled: bool = Field(True, description="Disabled gates are recorded as skipped, never failed.")

    @model_validator(mode="after")
    def _one_bound(self) -> GateSpec:
        if (self.min is None) == (self.max is None):
            raise ValueError(f"gate on '{self.metric}': set exactly one of min or max")
        return self


class TriggerSpec(StrictModel):
    """A rollback trigger of runbook 15.3: the observed metric moved past its approved-benchmark value."""

    benchmark: str = Field(min_length=1, description="Benchmark metric of the version the observation is compared with.")
    max_drop_points: float | None = Field(None, ge=0.0, le=100.0, description="Fire when observed < benchmark - this/100.")
    max_rise_fraction: float | None = Field(None, ge=0.0, le=100.0, description="Fire when observed > benchmark x (1 + this).")
    max_rise_points: float | None = Field(None, ge=0.0, le=100.0, description="Fire when observed > benchmark + this/100.")
    enabled: bool = Field(True, description="Disabled triggers are recorded as skipped.")

    @model_validator(mode="after")
    def _one_rule(self) -> TriggerSpec:
        rules = (self.max_drop_points, self.max_rise_fraction, self.max_rise_points)
        if sum(rule is not None for rule in rules) != 1:
            raise ValueError(f"trigger on '{self.benchmark}': set exactly one of max_drop_points, max_rise_fraction "
                             "or max_rise_points")
        return self


class ShadowConfig(StrictModel):
    """Shadow evaluation (runbook 15.2, 11.4): replay traffic through production and staging, compare."""

    traffic: TrafficConfig = Field(TrafficConfig(simulator={"seed": 2027}),
                                   description="Replayed log; the simulator's seed differs from the training data's.")
    gates: dict[str, GateSpec] | None = Field(None, description="Gates on the comparison; null: the family's defaults.")
    latency_warmup: int = Field(20, ge=0, le=10_000, description="Untimed queries per model before timing.")


class RolloutConfig(StrictModel):
    """The staged rollout plan of runbook 15.2, recorded on the version and advanced by the pipeline."""

    plan: tuple[float, ...] = Field(
        (0.05, 0.10, 0.25, 0.50, 1.0), min_length=1, description="Traffic shares, increasing, ending at 1.0."
    )
    steps_per_run: int | None = Field(
        1, ge=1, le=100,
        description="Rollout steps one passing shadow evaluation may advance; null walks the whole plan in one run.",
    )

    @model_validator(mode="after")
    def _increasing_to_one(self) -> RolloutConfig:
        plan = self.plan
        if any(not 0.0 < share <= 1.0 for share in plan) or list(plan) != sorted(set(plan)) or plan[-1] != 1.0:
            raise ValueError(f"plan: shares must be in (0, 1], strictly increasing and end at 1.0 (got {list(plan)})")
        return self


class FamilyConfig(StrictModel):
    """What every life-cycle config shares: the family, its registered model and the family's options."""

    family: str = Field("intent", min_length=1, description="Model family (intent, or one a plugin registers).")
    model_name: str | None = Field(None, min_length=1,
                                   description="MLflow registered model; null: the family's own (mangaassist-intent).")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="The family's own settings (intent: refusal_label, escalation_labels).")
    _family_options: BaseModel | None = PrivateAttr(None)

    @field_validator("family")
    @classmethod
    def _known_family(cls, name: str) -> str:
        from mangadistill.errors import ConfigError
        from mangadistill.families import get_family

        try:
            get_family(name)
        except ConfigError as exc:  # as a ValueError, the one-line message names the file and the key
            raise ValueError(str(exc)) from None
        return name

    @model_validator(mode="after")
    def _valid_options(self) -> FamilyConfig:
        from pydantic import ValidationError

        from mangadistill.families import get_family

        try:
            self._family_options = get_family(self.family).options_model.model_validate(self.options)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"options.{where}: {first['msg']} (family {self.family})") from None
        return self

    @property
    def registered_model(self) -> str:
        from mangadistill.families import get_family

        return self.model_name or get_family(self.family).model_name

    @property
    def family_options(self) -> BaseModel:
        return self._family_options


class PromoteConfig(FamilyConfig):
    """Config of a promotion run: offline gates -> staging; shadow + rollout -> production."""

    candidate_version: int | None = Field(
        None, ge=1, description="Version to promote (run.py --version N); default: the newest never-retired student."
    )
    bootstrap: bool = Field(
        True, description="When nothing is in production, let the family register a first production model "
        "(intent: the candidate's teacher)."
    )
    offline_gates: dict[str, GateSpec] | None = Field(
        None, description="Gates on the benchmark and checklist (runbook 6.9, 15.1); null: the family's defaults."
    )
    shadow: ShadowConfig = ShadowConfig()
    rollout: RolloutConfig = RolloutConfig()

    def offline_gate_set(self) -> dict[str, GateSpec]:
        from mangadistill.families import get_family

        return dict(self.offline_gates) if self.offline_gates is not None else get_family(self.family).default_offline_gates()

    def shadow_gate_set(self) -> dict[str, GateSpec]:
        from mangadistill.families import get_family

        gates = self.shadow.gates
        return dict(gates) if gates is not None else get_family(self.family).default_shadow_gates()


class MonitorDriftConfig(StrictModel):
    """Drift input to monitoring: the newest `drift_report` run's drift share -> a retraining recommendation."""

    enabled: bool = Field(True, description="Read the newest drift report and recommend retraining above the threshold.")
    experiment: str = Field("drift_report", min_length=1, description="MLflow experiment of the drift_report runs.")
    max_drift_share: float = Field(
        0.3, gt=0.0, le=1.0, description="Recommend retraining at or above this share of drifted columns."
    )
    max_age_hours: float = Field(168.0, gt=0.0, description="An older report is reported as stale, not acted on.")


class MonitorConfig(FamilyConfig):
    """Config of a monitoring run: rollback triggers (runbook 15.3) on a labelled traffic log, and drift."""

    traffic: TrafficConfig = Field(TrafficConfig(simulator={"seed": 2028}), description="The labelled traffic log.")
    triggers: dict[str, TriggerSpec] | None = Field(
        None, description="Observed metric -> rule against the benchmark; null: the family's defaults."
    )
    action: Literal["rollback", "recommend"] = Field(
        "rollback", description="rollback: move production to last-known-good when a trigger fires; recommend: only record."
    )
    drift: MonitorDriftConfig = MonitorDriftConfig()
    latency_queries: int = Field(200, ge=5, le=100_000, description="Timed single queries for the observed p95.")
    latency_warmup: int = Field(20, ge=0, le=10_000, description="Untimed queries before timing.")

    def trigger_set(self) -> dict[str, TriggerSpec]:
        from mangadistill.families import get_family

        return dict(self.triggers) if self.triggers is not None else get_family(self.family).default_triggers()


class RollbackConfig(FamilyConfig):
    """Config of a manual rollback: move production back by hand."""

    candidate_version: int | None = Field(
        None, ge=1, description="Version to restore (run.py --version N); default: the last-known-good alias."
    )
    reason: str = Field("manual rollback", min_length=1, description="Recorded on both versions.")


__all__ = ['GateSpec', 'TriggerSpec', 'ShadowConfig', 'RolloutConfig', 'FamilyConfig', 'PromoteConfig',
           'MonitorDriftConfig', 'MonitorConfig', 'RollbackConfig']
