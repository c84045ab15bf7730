"""What a registered version carries: the one module that reads and writes MLflow model-version tags.

A version's life-cycle state is one typed `VersionRecord`. Where each part lives in MLflow 3 (schema 1):

- **a few tags a person reads at a glance** in the registry's versions table: ``family``, ``role``,
  ``stage``, ``gates`` (``offline pass, shadow pass``), ``rollout`` (``25%``), ``served_variant`` and, only
  when something is wrong, ``flag``;
- **one machine-readable tag** ``record``: JSON with the schema version, provenance, each gate set's
  decision and per-gate results, stage history, rollout history, rollback history and monitoring state;
- **numbers** (the approved benchmark the gates read and the rollback triggers compare against) are
  metrics of the version's *logged model*, ``benchmark/<metric>``, which MLflow 3 shows on the logged
  model's page and charts by prefix; they are written once, at registration.

Every other module asks this one: `read_record` / `update_record` for a version, `register_version`
to create one, `find_by_source` to reuse one. Versions written before schema 1 (about twenty flat
``gate_*``/``gate.*``/``rollout.*`` tags) are read through `from_tags`' migration, so an existing registry
keeps working; the next write stores them in the new layout.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mangadistill.lifecycle.gates import as_number

SCHEMA_VERSION = 1

# ----------------------------------------------------------------------------------- stage vocabulary
#: Aliases: the source of truth for "which version is in stage X" (MLflow 3's UI shows and edits them).
STAGING, PRODUCTION, LAST_KNOWN_GOOD = "staging", "production", "last-known-good"
STAGES = (STAGING, PRODUCTION)
ALIASES = (STAGING, PRODUCTION, LAST_KNOWN_GOOD)
#: Stage values a version's record can hold besides the alias stages.
ARCHIVED, ROLLED_BACK, NONE = "archived", "rolled_back", "none"
#: Gate sets whose passing decisions together make a passing gate record.
REQUIRED_GATE_SETS = ("offline", "shadow")
#: Roles of a registered version.
STUDENT, TEACHER, BASELINE = "student", "teacher", "baseline"

# -------------------------------------------------------------------------------------------- tags
RECORD_TAG = "record"
_GLANCE_TAGS = ("family", "role", "stage", "gates", "rollout", "served_variant", "flag")
MANAGED_TAGS = (*_GLANCE_TAGS, RECORD_TAG)
#: Prefix of the approved-benchmark metrics on the version's logged model.
BENCHMARK_PREFIX = "benchmark/"
#: Largest `record` tag written (MLflow's SQL stores accept at least 5,000 characters per tag value).
MAX_RECORD_CHARS = 5000
_REASON_CHARS = 300
_HISTORY_LIMIT = 10


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _short(text: str | None, limit: int = _REASON_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Provenance:
    """Where a version came from."""

    pipeline_run: str | None = None  # the pipeline run that built and registered it (ZenML run name)
    source_id: str | None = None  # identity of the registered weights: registering them again reuses the version
    teacher: str | None = None  # what it was distilled from (a model reference or a registry URI)
    artifacts: dict[str, str] = field(default_factory=dict)  # named artifact ids (ZenML artifact versions)


@dataclass
class GateSetRecord:
    """One gate set's outcome on this version (the full decision is the JSON artifact at `record_uri`)."""

    decision: str  # pass / fail
    reason: str
    evaluated_at: str
    results: dict[str, str] = field(default_factory=dict)  # gate name -> "0.93 >= 0.89 PASS"
    record_uri: str | None = None

    @property
    def passed(self) -> bool:
        return self.decision == "pass"


@dataclass
class RolloutRecord:
    """Where the version stands in the staged rollout plan (runbook 15.2)."""

    share: float | None = None  # None: not started
    label: str = "not started"
    history: list[dict[str, Any]] = field(default_factory=list)  # {"at", "share"}


@dataclass
class RollbackEvent:
    """One rollback this version took part in, as the version that was `restored` or `replaced`."""

    at: str
    reason: str
    role: str  # "restored" (put back in production) or "replaced" (taken out of production)
    other_version: str | None  # the version on the other side of the rollback


@dataclass
class MonitorRecord:
    """The latest monitoring outcome on a production version."""

    checked_at: str | None = None
    last_decision: str | None = None
    recommendation: str | None = None  # "roll back: ..." when a trigger fired under action: recommend
    retrain_recommended: bool | None = None
    retrain_reason: str | None = None
    drift_report_run: str | None = None


@dataclass
class VersionRecord:
    """Everything the life cycle knows about one registered version."""

    family: str
    role: str = STUDENT
    served_variant: str | None = None
    serving_threads: int | None = None  # threads per query the benchmark used (monitoring times the same way)
    provenance: Provenance = field(default_factory=Provenance)
    stage: str = NONE
    stage_reason: str = ""
    stage_changed_at: str | None = None
    production_since: str | None = None
    flag: str | None = None
    gates: dict[str, GateSetRecord] = field(default_factory=dict)
    rollout: RolloutRecord = field(default_factory=RolloutRecord)
    rollbacks: list[RollbackEvent] = field(default_factory=list)
    monitor: MonitorRecord = field(default_factory=MonitorRecord)
    benchmark: dict[str, float] = field(default_factory=dict)  # logged-model metrics, not tags
    schema: int = SCHEMA_VERSION

    # ------------------------------------------------------------------------------ derived facts
    @property
    def has_passing_gate_record(self) -> bool:
        return all(name in self.gates and self.gates[name].passed for name in REQUIRED_GATE_SETS)

    @property
    def was_retired(self) -> bool:
        """Archived or rolled back: never picked again as a candidate unless named."""
        return self.stage in (ARCHIVED, ROLLED_BACK)

    def gate_summary(self) -> str:
        """``offline pass, shadow pass`` (``-`` before any gate ran)."""
        return ", ".join(f"{name} {record.decision}" for name, record in self.gates.items()) or "-"

    def set_stage(self, stage: str, reason: str) -> None:
        self.stage, self.stage_reason, self.stage_changed_at = stage, _short(reason), now()
        if stage == PRODUCTION:
            self.production_since = self.stage_changed_at
        else:
            self.flag = None  # a flag is about the production version

    def record_gates(self, gate_set: str, decision: str, reason: str, results: Mapping[str, str],
                     record_uri: str | None = None) -> None:
        self.gates[gate_set] = GateSetRecord(decision, _short(reason), now(), dict(results), record_uri)

    def record_rollout(self, share: float, label: str) -> None:
        self.rollout.share, self.rollout.label = share, label
        self.rollout.history = [*self.rollout.history, {"at": now(), "share": share}][-_HISTORY_LIMIT:]

    def record_rollback(self, role: str, reason: str, other_version: str | None) -> None:
        event = RollbackEvent(now(), _short(reason), role, other_version)
        self.rollbacks = [*self.rollbacks, event][-_HISTORY_LIMIT:]

    # ---------------------------------------------------------------------------------- tags
    def to_tags(self) -> dict[str, str]:
        """The version's tags: the glance tags (``gates`` and ``rollout`` always, so their place in the UI's tag
        list is fixed from registration on; ``served_variant`` and ``flag`` only when set) and the JSON `record`."""
        glance = {"family": self.family, "role": self.role, "stage": self.stage, "gates": self.gate_summary(),
                  "rollout": self.rollout.label, "served_variant": self.served_variant or "", "flag": self.flag or ""}
        return {**{key: value for key, value in glance.items() if value}, RECORD_TAG: self._record_json()}

    def _record_json(self) -> str:
        body = {key: value for key, value in asdict(self).items() if key not in ("benchmark", "family", "role")}
        text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        while len(text) > MAX_RECORD_CHARS:  # the oldest entries of the longer history go first
            history = max((body["rollout"]["history"], body["rollbacks"]), key=len)
            if not history:
                raise ValueError(f"version record of {len(text)} characters exceeds {MAX_RECORD_CHARS} "
                                 "without any history to drop")
            history.pop(0)
            text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        return text

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], benchmark: Mapping[str, float] | None = None,
                  default_family: str = "intent") -> VersionRecord:
        """Parse a version's tags (schema 1, or the flat tags of versions registered before it)."""
        if RECORD_TAG not in tags:
            return _from_legacy_tags(tags, benchmark, default_family)
        body = json.loads(tags[RECORD_TAG])
        if int(body.get("schema", 0)) > SCHEMA_VERSION:
            raise ValueError(f"version record schema {body['schema']} is newer than this code's "
                             f"{SCHEMA_VERSION}; upgrade mangadistill")
        # numbers of a schema-0 version without a logged model stay in their old tags (`write_record`)
        record = cls(family=tags.get("family", default_family), role=tags.get("role", STUDENT),
                     benchmark={**_legacy_numbers(tags), **dict(benchmark or {})})
        simple = {f.name for f in fields(cls)} - {"provenance", "gates", "rollout", "rollbacks", "monitor",
                                                  "benchmark", "family", "role"}
        for key in simple & body.keys():
            setattr(record, key, body[key])
        record.provenance = Provenance(**body.get("provenance", {}))
        record.gates = {name: GateSetRecord(**value) for name, value in body.get("gates", {}).items()}
        record.rollout = RolloutRecord(**body.get("rollout", {}))
        record.rollbacks = [RollbackEvent(**event) for event in body.get("rollbacks", [])]
        record.monitor = MonitorRecord(**body.get("monitor", {}))
        record.schema = SCHEMA_VERSION
        return record


def _from_legacy_tags(tags: Mapping[str, str], benchmark: Mapping[str, float] | None,
                      family: str) -> VersionRecord:
    """Schema 0: the flat tags `register_student`, `promote_intent` and `monitor_intent` wrote before schema 1."""
    record = VersionRecord(
        family=family, role=tags.get("role", STUDENT), served_variant=tags.get("served_variant"),
        serving_threads=int(tags["serving_threads"]) if str(tags.get("serving_threads", "")).isdigit() else None,
        provenance=Provenance(pipeline_run=tags.get("zenml_pipeline_run"), source_id=tags.get("source_id")),
        stage=tags.get("stage", NONE), stage_reason=tags.get("stage.reason", ""),
        stage_changed_at=tags.get("stage.changed_at"), production_since=tags.get("production_since"),
        flag=tags.get("stage.flag"),
        benchmark={**_legacy_numbers(tags), **dict(benchmark or {})},
        schema=0,
    )
    for gate_set in REQUIRED_GATE_SETS:
        prefix = f"gate.{gate_set}."
        if f"{prefix}decision" in tags:
            results = {key[len(prefix):]: value for key, value in tags.items() if key.startswith(prefix)
                       and key[len(prefix):] not in ("decision", "reason", "record", "evaluated_at")}
            record.gates[gate_set] = GateSetRecord(tags[f"{prefix}decision"], tags.get(f"{prefix}reason", ""),
                                                   tags.get(f"{prefix}evaluated_at", ""), results,
                                                   tags.get(f"{prefix}record"))
    share = as_number(tags.get("rollout.share"))
    if share is not None:
        record.rollout = RolloutRecord(share, tags.get("rollout.stage", f"{100 * share:g}%"),
                                       json.loads(tags.get("rollout.history", "[]")))
    if "rollback.reason" in tags:
        restored = "rollback.restored_from" in tags
        record.rollbacks.append(RollbackEvent(tags.get("rollback.at", ""), tags["rollback.reason"],
                                              "restored" if restored else "replaced",
                                              tags.get("rollback.restored_from" if restored else "rollback.replaced_by")))
    record.monitor = MonitorRecord(tags.get("monitor.checked_at"), tags.get("monitor.last_decision"),
                                   tags.get("monitor.recommendation"),
                                   None if "retrain_recommended" not in tags else tags["retrain_recommended"] == "true",
                                   tags.get("retrain_reason"), tags.get("drift_report_run"))
    return record


def _legacy_numbers(tags: Mapping[str, str]) -> dict[str, float]:
    """Benchmark numbers held in schema-0 tags (``gate_<metric>``, ``cost_reduction``, ...)."""
    numbers = {key.removeprefix("gate_"): as_number(value) for key, value in tags.items() if key.startswith("gate_")}
    numbers.update({new: as_number(tags.get(old)) for old, new in _LEGACY_NUMBERS.items()})
    return {key: value for key, value in numbers.items() if value is not None}


# ------------------------------------------------------------------------------------ registry I/O
def _logged_model_id(version: Any) -> str | None:
    source = getattr(version, "source", "") or ""
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def read_benchmark(client: MlflowClient, version: Any) -> dict[str, float]:
    """The approved benchmark: ``benchmark/*`` metrics of the version's logged model (empty if it has none)."""
    model_id = _logged_model_id(version)
    if model_id is None:
        return {}
    try:
        metrics = client.get_logged_model(model_id).metrics or []
    except MlflowException:
        return {}
    return {m.key[len(BENCHMARK_PREFIX):]: float(m.value) for m in metrics if m.key.startswith(BENCHMARK_PREFIX)}


def record_of(client: MlflowClient, version: Any, default_family: str = "intent") -> VersionRecord:
    """The record of an already fetched `ModelVersion` (tags + benchmark)."""
    return VersionRecord.from_tags(dict(version.tags or {}), read_benchmark(client, version), default_family)


def read_record(client: MlflowClient, name: str, version: str, default_family: str = "intent") -> VersionRecord:
    return record_of(client, client.get_model_version(name, str(version)), default_family)


def write_record(client: MlflowClient, name: str, version: str, record: VersionRecord,
                 current: Any | None = None) -> None:
    """Write the record's tags: changed ones are set, managed ones it no longer has and legacy ones deleted.

    A record read from schema-0 tags first moves its benchmark numbers onto the version's logged model
    (where schema 1 keeps them); a version without a logged model keeps its old number tags, so no
    approved benchmark is ever lost by an upgrade.
    """
    version = str(version)
    current = current if current is not None else client.get_model_version(name, version)
    current_tags = dict(current.tags or {})
    keep_legacy_numbers = record.schema == 0 and bool(record.benchmark) and not _migrate_benchmark(client, current, record)
    record.schema = SCHEMA_VERSION
    wanted = record.to_tags()
    # The JSON record is the truth, the glance tags its summary: once a record exists it is written first, so
    # a run stopped between two writes leaves a stale summary, never a stale record. A new version gets its
    # glance tags first (the UI lists tags in the order they were first set: the long JSON goes behind them).
    order = [*wanted] if RECORD_TAG not in current_tags else [RECORD_TAG, *(k for k in wanted if k != RECORD_TAG)]
    for key in order:
        if current_tags.get(key) != wanted[key]:
            client.set_model_version_tag(name, version, key, wanted[key])
    stale = [key for key in current_tags if key not in wanted and (key in MANAGED_TAGS or _is_legacy_tag(key))
             and not (keep_legacy_numbers and _is_legacy_number(key))]
    for key in stale:
        client.delete_model_version_tag(name, version, key)


def _migrate_benchmark(client: MlflowClient, version: Any, record: VersionRecord) -> bool:
    """Log a schema-0 record's benchmark on the version's logged model; False when there is nowhere to log it."""
    model_id = _logged_model_id(version)
    if model_id is None or not getattr(version, "run_id", None):
        return False
    if not read_benchmark(client, version):
        log_benchmark(model_id, version.run_id, record.benchmark)
    return True


_LEGACY_PREFIXES = ("gate_", "gate.", "stage.", "rollout.", "rollback.", "monitor.")
_LEGACY_KEYS = ("zenml_pipeline_run", "source_id", "production_since", "cost_reduction", "retention",
                "serving_threads", "teacher_gate_accuracy", "fp32_student_gate_accuracy", "retrain_recommended",
                "retrain_reason", "drift_report_run")


#: Schema-0 tags that held benchmark numbers (and the new benchmark names they map to).
_LEGACY_NUMBERS = {"cost_reduction": "cost_reduction", "retention": "retention",
                   "teacher_gate_accuracy": "teacher_accuracy", "fp32_student_gate_accuracy": "fp32_student_accuracy"}


def _is_legacy_tag(key: str) -> bool:
    return key.startswith(_LEGACY_PREFIXES) or key in _LEGACY_KEYS


def _is_legacy_number(key: str) -> bool:
    return key.startswith("gate_") or key in _LEGACY_NUMBERS


def update_record(client: MlflowClient, name: str, version: str, change: Callable[[VersionRecord], None],
                  default_family: str = "intent") -> VersionRecord:
    """Read the version's record, apply `change` to it, write it back; returns the new record."""
    current = client.get_model_version(name, str(version))
    record = record_of(client, current, default_family)
    change(record)
    write_record(client, name, str(version), record, current)
    return record


def all_versions(client: MlflowClient, name: str, default_family: str = "intent") -> list[tuple[Any, VersionRecord]]:
    """(`ModelVersion`, record) of every version of `name`, oldest first; records without their benchmark (one query).

    A version nobody ever tagged (e.g. registered by hand) reads as a plain student in stage ``none``.
    """
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    return [(v, VersionRecord.from_tags(dict(v.tags or {}), default_family=default_family)) for v in versions]


def all_records(client: MlflowClient, name: str, default_family: str = "intent") -> list[tuple[str, VersionRecord]]:
    """(version number, record) of every version of `name`, oldest first (see `all_versions`)."""
    return [(str(v.version), record) for v, record in all_versions(client, name, default_family)]


def find_by_source(client: MlflowClient, name: str, source_id: str) -> str | None:
    """The newest version of `name` registered from `source_id` (the same weights), if any."""
    matches = [int(version) for version, record in all_records(client, name) if record.provenance.source_id == source_id]
    return str(max(matches)) if matches else None


def log_benchmark(model_id: str, run_id: str, benchmark: Mapping[str, float]) -> None:
    """Attach the approved benchmark to a logged model (``benchmark/<metric>`` metrics)."""
    import mlflow

    finite = {f"{BENCHMARK_PREFIX}{key}": float(value) for key, value in benchmark.items()
              if value is not None and not math.isnan(float(value))}
    if finite:
        mlflow.log_metrics(finite, run_id=run_id, model_id=model_id)
