"""The life cycle against the MLflow registry, for any model family: pick a candidate, gate it, stage it,
shadow it, roll it out, watch production, roll back. The steps of `promote`, `monitor` and `rollback` call these.

Decisions come from the pure functions in `gates`, `rollout` and `triggers`; what differs per family
comes from its `Family` hooks; this module gathers their inputs from the registry and applies their
outcome through `stages` (aliases) and `record` (what a version carries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from mangadistill.config import GateSpec, MonitorConfig, PromoteConfig
from mangadistill.errors import UserError
from mangadistill.evaluation.latency import latency_summary
from mangadistill.families import Family, FetchArtifact, get_family
from mangadistill.lifecycle import record as records
from mangadistill.lifecycle.faults import registry_guard
from mangadistill.lifecycle import rollout, stages
from mangadistill.lifecycle.gates import GateDecision, evaluate_gates
from mangadistill.lifecycle.loading import load_version
from mangadistill.lifecycle.record import TEACHER, VersionRecord
from mangadistill.lifecycle.shadow import latency_metrics, replay
from mangadistill.lifecycle.triggers import TriggerDecision, evaluate_triggers
from mangadistill.traffic import TrafficLog, load_traffic


class CandidateError(UserError):
    """No version to promote, or the requested one does not exist."""

    exit_code = 1


@registry_guard
def select_candidate(client: MlflowClient, name: str, version: int | None = None,
                     family: str | None = None) -> dict[str, Any]:
    """The version to promote: `version`, else the newest non-teacher version that was never archived or rolled back.

    With `family`, a candidate of another family is refused (its gates and comparison would not apply).
    """
    versions = records.all_records(client, name, default_family=family or "intent")
    if version is not None:
        chosen = [(number, record) for number, record in versions if number == str(version)]
        if not chosen:
            have = ", ".join(number for number, _ in versions) or "none"
            raise CandidateError(f"{name} has no version {version} (has: {have})")
    else:
        chosen = [(number, record) for number, record in versions
                  if record.role not in (TEACHER, records.BASELINE) and not record.was_retired]
        if not chosen:
            raise CandidateError(f"{name} has no candidate version to promote; run the family's distill pipeline "
                                 "first, or pass --version N")
    number, current = chosen[-1]
    if family is not None and current.family != family:
        raise CandidateError(f"{name} version {number} belongs to family '{current.family}', not '{family}'; "
                             f"set family: {current.family} in the config (or pass --model {name} to promote)")
    held = [alias for alias, v in stages.aliases(client, name).items() if v == number and alias in stages.STAGES]
    return {"name": name, "version": number, "family": current.family, "pipeline_run": current.provenance.pipeline_run,
            "stage": held[0] if held else current.stage}


@registry_guard
def bootstrap_production(client: MlflowClient, family: Family, name: str, candidate_version: str,
                         fetch: FetchArtifact, enabled: bool = True) -> dict[str, Any]:
    """When nothing is in production, let the family register a first production model and promote it."""
    production = stages.version_in_stage(client, name, stages.PRODUCTION)
    if production is not None or not enabled:
        return {"version": production, "bootstrapped": False,
                **({} if enabled else {"reason": "bootstrap is off (bootstrap: false)"})}
    candidate = records.read_record(client, name, candidate_version, family.name)
    registered = family.bootstrap(name, candidate, fetch)
    if registered is None:
        return {"version": None, "bootstrapped": False,
                "reason": f"family {family.name} has no bootstrap model for version {candidate_version}"}
    move = stages.promote_to_production(
        client, name, registered, f"bootstrap: first production model ({candidate.provenance.pipeline_run or family.name})")
    return {"version": registered, "bootstrapped": True, "move": move.describe()}


@registry_guard
def offline_metrics(client: MlflowClient, family: Family, name: str, version: str) -> dict[str, object]:
    """The candidate's approved benchmark plus the checklist facts of runbook 15.1.

    - ``rollback_target_available``: 1 if another version is in production (it would become
      last-known-good) or a last-known-good alias exists;
    - ``monitoring_baseline_complete``: 1 if the benchmark holds every metric the family's rollback
      triggers compare against (without them, monitoring cannot watch the version).
    """
    benchmark = records.read_record(client, name, version, family.name).benchmark
    production = stages.version_in_stage(client, name, stages.PRODUCTION)
    last_good = stages.version_in_stage(client, name, stages.LAST_KNOWN_GOOD)
    target = (production is not None and production != version) or (last_good is not None and last_good != version)
    baseline = all(np.isfinite(benchmark.get(key, np.nan)) for key in family.monitored_metrics)
    return {**benchmark, "rollback_target_available": float(target), "monitoring_baseline_complete": float(baseline)}


@registry_guard
def write_gate_record(client: MlflowClient, name: str, version: str, decision: GateDecision,
                      artifact_uri: str | None = None) -> VersionRecord:
    """Keep the gate set's decision and per-gate results on the version's record."""
    return records.update_record(client, name, version, lambda record: record.record_gates(
        decision.gate_set, "pass" if decision.passed else "fail", decision.reason, decision.results(), artifact_uri))


@registry_guard
def gate_offline(client: MlflowClient, family: Family, name: str, version: str,
                 gates: dict[str, GateSpec]) -> GateDecision:
    """Evaluate the offline gate set (the caller records it with `write_gate_record`)."""
    return evaluate_gates("offline", gates, offline_metrics(client, family, name, version))


@dataclass
class ShadowResult:
    metrics: dict[str, float]
    disagreements: pd.DataFrame
    event: dict
    decision: GateDecision
    traffic: TrafficLog


@registry_guard
def run_shadow(client: MlflowClient, name: str, staging: str, production: str, config: PromoteConfig) -> ShadowResult:
    """Replay the traffic log through the production and staging versions and gate the comparison."""
    family = get_family(config.family)
    control_record = records.read_record(client, name, production, family.name)
    shadow_record = records.read_record(client, name, staging, family.name)
    control = load_version(name, production, control_record)
    shadow = load_version(name, staging, shadow_record)
    traffic = load_traffic(config.shadow.traffic, family.known_labels(control))
    texts = traffic.rows["text"].tolist()
    produced = replay(control.predict, texts, config.shadow.latency_warmup)
    shadowed = replay(shadow.predict, texts, config.shadow.latency_warmup)
    metrics, bucket = family.compare(produced, shadowed, traffic, config.family_options)
    metrics.update(latency_metrics(produced, shadowed, (control_record.serving_threads, shadow_record.serving_threads)))
    metrics["quarantined_rows"] = float(len(traffic.quarantine))
    decision = evaluate_gates("shadow", config.shadow_gate_set(), metrics)
    event = family.shadow_event(metrics, model_name=name, staging_version=staging, production_version=production,
                                production_role=control_record.role)
    return ShadowResult(metrics, bucket, event, decision, traffic)


@registry_guard
def advance_rollout(client: MlflowClient, name: str, version: str, shadow_passed: bool,
                    config: PromoteConfig) -> dict[str, Any]:
    """Advance the version's rollout state; at 100% it becomes production (the old one archived)."""
    current = records.read_record(client, name, version, config.family)
    state = rollout.parse_state(config.rollout.plan, current.rollout.share)
    new, how = rollout.advance(state, shadow_passed, config.rollout.steps_per_run)
    if new != state:
        records.update_record(client, name, version, lambda record: record.record_rollout(new.share, new.label()))
    result = {"rollout": new.label(), "rollout_share": new.share, "rollout_note": how, "promoted": False, "move": None}
    if new.complete and shadow_passed and stages.version_in_stage(client, name, stages.PRODUCTION) != version:
        move = stages.promote_to_production(client, name, version, f"gates and shadow passed; rollout {how}")
        result.update(promoted=True, move=move.describe(), archived=move.replaced)
    return result


# --------------------------------------------------------------------------------------------- monitoring
@registry_guard
def observe_production(client: MlflowClient, name: str, config: MonitorConfig) -> tuple[str, VersionRecord, dict, TrafficLog]:
    """Score the production version on the labelled traffic log: the family's quality metrics and warm p95.

    Returns (version, its record = the approved benchmark, observed metrics, the log).
    """
    family = get_family(config.family)
    version = stages.version_in_stage(client, name, stages.PRODUCTION)
    if version is None:
        raise stages.RegistryStateError(f"{name}: nothing is in production (no 'production' alias); promote first")
    current = records.read_record(client, name, version, family.name)
    model = load_version(name, version, current)
    traffic = load_traffic(config.traffic, family.known_labels(model))
    result = replay(model.predict, traffic.rows["text"].tolist(), config.latency_warmup)
    observed: dict[str, float] = {"rows": float(len(traffic.rows)), "quarantined_rows": float(len(traffic.quarantine))}
    observed.update(family.observe(result, traffic, config.family_options))
    timed = result.latency_ms[: config.latency_queries]
    observed["latency_p95_ms"] = latency_summary(timed)["latency_p95_ms"]
    observed["latency_p95_ms_queries"] = float(len(timed))
    return version, current, observed, traffic


def check_triggers(config: MonitorConfig, benchmark: dict[str, float], observed: dict[str, float]) -> TriggerDecision:
    return evaluate_triggers(config.trigger_set(), benchmark, observed)


@registry_guard
def act_on_triggers(client: MlflowClient, name: str, version: str, decision: TriggerDecision, action: str) -> dict:
    """Roll production back to last-known-good (action ``rollback``) or only record the recommendation."""

    def note(record: VersionRecord) -> None:
        record.monitor.checked_at, record.monitor.last_decision = records.now(), decision.reason[:500]
        if decision.fired and action == "recommend":
            record.monitor.recommendation = f"roll back: {decision.reason}"[:500]

    records.update_record(client, name, version, note)
    if not decision.fired:
        return {"action": "none", "rolled_back": False, "reason": decision.reason}
    if action == "recommend":
        target = stages.version_in_stage(client, name, stages.LAST_KNOWN_GOOD)
        return {"action": "recommend", "rolled_back": False, "reason": decision.reason, "target": target}
    move = stages.rollback_production(client, name, decision.reason)
    stages.flag_ungated_production(client, name)
    return {"action": "rollback", "rolled_back": True, "reason": decision.reason, "move": move.describe(),
            "restored": move.version, "replaced": move.replaced}


@registry_guard
def record_retraining(client: MlflowClient, name: str, version: str, check: dict[str, Any]) -> None:
    """Keep the newest drift report's retraining recommendation on the production version's record."""

    def note(record: VersionRecord) -> None:
        record.monitor.retrain_recommended = bool(check["retrain"])
        record.monitor.retrain_reason = str(check["reason"])[:500]
        record.monitor.drift_report_run = check.get("run_id")

    records.update_record(client, name, version, note)
