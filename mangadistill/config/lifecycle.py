"""Config of the life-cycle pipelines: promotion (gates, shadow, rollout), monitoring (triggers), rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mangadistill.config.base import StrictModel
from mangadistill.config.traffic import ReplayTrafficConfig

# ------------------------------------------------------------------------- promotion, monitoring, rollback
class GateSpec(StrictModel):
    """One gate: a recorded metric that must be at least `min` or at most `max` (exactly one of them)."""

    category: Literal["quality", "safety", "latency", "cost", "rollback", "observability", "shadow"] = Field(
        description="Checklist category of runbook 15.1 (shadow: the online comparison of 15.2)."
    )
    metric: str = Field(min_length=1, description="Name of the metric the gate reads (e.g. a version tag gate_accuracy).")
    min: float | None = Field(None, description="Pass when value >= min.")
    max: float | None = Field(None, description="Pass when value <= max.")
    enabled: bool = Field(True, description="Disabled gates are recorded as skipped, never failed.")

    @model_validator(mode="after")
    def _one_bound(self) -> GateSpec:
        if (self.min is None) == (self.max is None):
            raise ValueError(f"gate on '{self.metric}': set exactly one of min or max")
        return self



class LabelRolesConfig(StrictModel):
    """Which intents count as refusals and as escalations/rare classes when traffic is scored."""

    refusal_label: str = Field("out_of_scope", min_length=1, description="Intent answered with a refusal.")
    escalation_labels: tuple[str, ...] = Field(
        ("escalation",), min_length=1, description="Rare high-risk intents handed to a human (rare-class recall)."
    )


def _default_offline_gates() -> dict[str, GateSpec]:
    return {
        "accuracy": GateSpec(category="quality", metric="gate_accuracy", min=0.89),
        "rare_class_recall": GateSpec(category="quality", metric="gate_rare_class_recall", min=0.80),
        "refusal_precision": GateSpec(category="safety", metric="gate_refusal_precision", min=0.94),
        "latency_p95": GateSpec(category="latency", metric="gate_latency_p95_ms", max=6.0),
        # a new Python process to first prediction, not a Lambda cold start: recorded, not gated (configs/promote_intent.yaml)
        "cold_start": GateSpec(category="latency", metric="gate_cold_start_ms", max=150.0, enabled=False),
        "cost_reduction": GateSpec(category="cost", metric="cost_reduction", min=0.5),
        "rollback_target": GateSpec(category="rollback", metric="rollback_target_available", min=1.0),
        "observability": GateSpec(category="observability", metric="monitoring_baseline_complete", min=1.0),
    }


def _default_shadow_gates() -> dict[str, GateSpec]:
    return {
        "agreement": GateSpec(category="shadow", metric="agreement_rate", min=0.85),
        "refusal_rate_shift": GateSpec(category="shadow", metric="refusal_rate_abs_delta", max=0.02),
        "escalation_rate_shift": GateSpec(category="shadow", metric="escalation_rate_abs_delta", max=0.02),
        "staging_latency_p95": GateSpec(category="shadow", metric="staging_p95_latency_ms", max=6.0),
    }


class ShadowConfig(StrictModel):
    """Shadow evaluation (runbook 15.2, 11.4): replay traffic through production and staging, compare."""

    traffic: ReplayTrafficConfig = ReplayTrafficConfig()
    labels: LabelRolesConfig = LabelRolesConfig()
    gates: dict[str, GateSpec] = Field(default_factory=_default_shadow_gates, description="Gates on the comparison.")
    latency_warmup: int = Field(10, ge=0, le=10_000, description="Untimed queries per model before timing.")


class RolloutConfig(StrictModel):
    """The staged rollout plan of runbook 15.2, recorded on the version and advanced by the pipeline."""

    plan: tuple[float, ...] = Field(
        (0.05, 0.10, 0.25, 0.50, 1.0), min_length=1, description="Traffic shares, increasing, ending at 1.0."
    )
    steps_per_run: int | None = Field(
        None, ge=1, le=100,
        description="Rollout steps one passing shadow evaluation may advance; null walks the whole plan in one run.",
    )

    @model_validator(mode="after")
    def _increasing_to_one(self) -> RolloutConfig:
        plan = self.plan
        if any(not 0.0 < share <= 1.0 for share in plan) or list(plan) != sorted(set(plan)) or plan[-1] != 1.0:
            raise ValueError(f"plan: shares must be in (0, 1], strictly increasing and end at 1.0 (got {list(plan)})")
        return self


class PromoteIntentConfig(StrictModel):
    """Config of the `promote_intent` pipeline: offline gates -> staging; shadow + rollout -> production."""

    model_name: str = Field("mangaassist-intent", min_length=1, description="MLflow registered model.")
    candidate_version: int | None = Field(
        None, ge=1, description="Version to promote (run.py --version N); default: the newest student version."
    )
    bootstrap_teacher: bool = Field(
        True, description="When nothing is in production, register the candidate's teacher and put it there first."
    )
    offline_gates: dict[str, GateSpec] = Field(
        default_factory=_default_offline_gates, description="Classifier gates (runbook 6.9) and checklist (15.1)."
    )
    shadow: ShadowConfig = ShadowConfig()
    rollout: RolloutConfig = RolloutConfig()



class TriggerSpec(StrictModel):
    """A rollback trigger of runbook 15.3: the observed metric moved past its approved-benchmark value."""

    baseline_tag: str = Field(min_length=1, description="Version tag holding the approved benchmark value.")
    max_drop_points: float | None = Field(None, ge=0.0, le=100.0, description="Fire when observed < baseline - this/100.")
    max_rise_fraction: float | None = Field(None, ge=0.0, le=100.0, description="Fire when observed > baseline x (1 + this).")
    enabled: bool = Field(True, description="Disabled triggers are recorded as skipped.")

    @model_validator(mode="after")
    def _one_rule(self) -> TriggerSpec:
        if (self.max_drop_points is None) == (self.max_rise_fraction is None):
            raise ValueError(f"trigger on '{self.baseline_tag}': set exactly one of max_drop_points or max_rise_fraction")
        return self


def _default_triggers() -> dict[str, TriggerSpec]:
    return {
        "rare_class_recall": TriggerSpec(baseline_tag="gate_rare_class_recall", max_drop_points=3.0),
        "refusal_precision": TriggerSpec(baseline_tag="gate_refusal_precision", max_drop_points=2.0),
        "latency_p95_ms": TriggerSpec(baseline_tag="gate_latency_p95_ms", max_rise_fraction=0.20),
    }


class MonitorDriftConfig(StrictModel):
    """Drift input to monitoring: the newest `drift_report` run's drift share -> a retraining recommendation."""

    enabled: bool = Field(True, description="Read the newest drift report and recommend retraining above the threshold.")
    experiment: str = Field("drift_report", min_length=1, description="MLflow experiment of the drift_report runs.")
    max_drift_share: float = Field(
        0.3, gt=0.0, le=1.0, description="Recommend retraining at or above this share of drifted columns."
    )
    max_age_hours: float = Field(168.0, gt=0.0, description="An older report is reported as stale, not acted on.")


class MonitorIntentConfig(StrictModel):
    """Config of the `monitor_intent` pipeline: rollback triggers (runbook 15.3) on a labelled traffic log."""

    model_name: str = Field("mangaassist-intent", min_length=1, description="MLflow registered model.")
    traffic: ReplayTrafficConfig = ReplayTrafficConfig()
    labels: LabelRolesConfig = LabelRolesConfig()
    triggers: dict[str, TriggerSpec] = Field(default_factory=_default_triggers, description="Keys name observed metrics.")
    action: Literal["rollback", "recommend"] = Field(
        "rollback", description="rollback: move production to last-known-good when a trigger fires; recommend: only record."
    )
    drift: MonitorDriftConfig = MonitorDriftConfig()
    latency_queries: int = Field(200, ge=5, le=100_000, description="Timed single queries for the observed p95.")
    latency_warmup: int = Field(20, ge=0, le=10_000, description="Untimed queries before timing.")



class RollbackIntentConfig(StrictModel):
    """Config of the `rollback_intent` pipeline: move production back by hand."""

    model_name: str = Field("mangaassist-intent", min_length=1, description="MLflow registered model.")
    candidate_version: int | None = Field(
        None, ge=1, description="Version to restore (run.py --version N); default: the last-known-good alias."
    )
    reason: str = Field("manual rollback", min_length=1, description="Recorded on both versions.")

__all__ = ['GateSpec', 'LabelRolesConfig', 'ShadowConfig', 'RolloutConfig', 'PromoteIntentConfig', 'TriggerSpec', 'MonitorDriftConfig', 'MonitorIntentConfig', 'RollbackIntentConfig']
