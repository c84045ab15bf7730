"""Registry stages as MLflow aliases: the one resolver, and every move (stage, promote, archive, roll back).

MLflow 3's UI shows and edits aliases, not the deprecated stages, so an alias is the source of truth:

- ``staging`` and ``production`` point at the version in that stage;
- ``last-known-good`` points at the production version that was replaced most recently (the rollback target).

Every move also records the stage in the version's record (`mangadistill.lifecycle.record`: the
``stage`` tag and its history) and in the legacy stage field (Staging, Production, Archived, None) for
API clients that still read it. A person who moves an alias in the UI moves the stage: `version_in_stage`
reads only aliases, and `sync_stage_mirrors` brings records and legacy stages in line with them.
"""

from __future__ import annotations

import functools
import json
import os
import random
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from mangadistill.errors import UserError
from mangadistill.lifecycle import record as records
from mangadistill.lifecycle.faults import RegistryError, registry_guard
from mangadistill.lifecycle.record import (
    ALIASES,
    ARCHIVED,
    LAST_KNOWN_GOOD,
    NONE,
    PRODUCTION,
    ROLLED_BACK,
    STAGES,
    STAGING,
    TEACHER,
    VersionRecord,
)

R = TypeVar("R")
_LEGACY = {STAGING: "Staging", PRODUCTION: "Production", ARCHIVED: "Archived", ROLLED_BACK: "Archived", NONE: "None"}


class RegistryStateError(UserError):
    """The registry is not in a state that allows the requested move (e.g. nothing to roll back to)."""

    exit_code = 1


@dataclass(frozen=True)
class StageMove:
    """What a move did: `version` entered `stage`; `replaced` (if any) left it and became `replaced_stage`."""

    name: str
    version: str
    stage: str
    replaced: str | None
    replaced_stage: str | None
    reason: str

    def describe(self) -> str:
        tail = f"; version {self.replaced} -> {self.replaced_stage}" if self.replaced else ""
        return f"{self.name} version {self.version} -> {self.stage}{tail} ({self.reason})"


class RegistryBusyError(RegistryError):
    """Another life-cycle run is moving this model's stages and did not finish in time."""


#: Registered-model tag holding the move lease: {"owner": ..., "at": epoch seconds}.
LOCK_TAG = "lifecycle.lock"
#: A lease older than this is abandoned (its run was killed) and may be taken over; a move takes seconds.
LOCK_TTL_S = 60.0
#: How long a move waits for another run's lease before giving up (longer than the TTL: a run started right
#: after a killed one waits the abandoned lease out instead of failing).
LOCK_WAIT_S = 90.0
#: Pause between writing the lease and reading it back: a concurrent writer in that window is detected.
LOCK_SETTLE_S = 0.25


def _lease(client: MlflowClient, name: str) -> dict | None:
    """The current, unexpired lease on `name`, if any."""
    try:
        raw = client.get_registered_model(name).tags.get(LOCK_TAG)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise
    try:
        lease = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return None  # a hand-edited tag: treat as no lease
    return lease if lease and time.time() - float(lease.get("at", 0)) < LOCK_TTL_S else None


@contextmanager
def move_lease(client: MlflowClient, name: str) -> Iterator[None]:
    """Hold the model's move lease while aliases and records change, so two runs never interleave their moves.

    MLflow has no compare-and-set on aliases or tags, so this is a lease tag with write-then-verify: write
    our owner id, wait `LOCK_SETTLE_S`, read it back, and proceed only if it is still ours (a concurrent
    writer in that window overwrote it and we wait instead); a lease left by a killed run expires after
    `LOCK_TTL_S`. Every move re-reads the aliases inside the lease, so the second of two promotions sees
    the first one's result. `sync_stage_mirrors` repairs whatever a run stopped between two writes left.
    """
    if not client.search_registered_models(f"name = '{name}'"):
        yield  # nothing registered yet: nothing to move
        return
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        holder = _lease(client, name)
        if holder is None:
            try:
                client.set_registered_model_tag(name, LOCK_TAG, json.dumps({"owner": owner, "at": time.time()}))
            except MlflowException:  # a concurrent writer of the same tag won the row (e.g. SQLite's UNIQUE)
                holder = _lease(client, name)
            else:
                time.sleep(LOCK_SETTLE_S)
                holder = _lease(client, name)
                if holder is not None and holder.get("owner") == owner:
                    break
        if time.monotonic() > deadline:
            raise RegistryBusyError(f"{name}: another life-cycle run holds the stage-move lease "
                                    f"({(holder or {}).get('owner', 'unknown')}) for over {LOCK_WAIT_S:.0f} s; "
                                    f"retry, or delete the registered-model tag '{LOCK_TAG}' if that run is gone")
        time.sleep(0.1 + random.random() * 0.2)
    try:
        yield
    finally:
        if (_lease(client, name) or {}).get("owner") == owner:
            client.delete_registered_model_tag(name, LOCK_TAG)


def _under_lease(func: Callable[..., R]) -> Callable[..., R]:
    """Run a move `func(client, name, ...)` while holding the model's move lease."""

    @functools.wraps(func)
    def leased(client: MlflowClient, name: str, *args, **kwargs) -> R:
        with move_lease(client, name):
            return func(client, name, *args, **kwargs)

    return leased


def _not_found(exc: MlflowException) -> bool:
    return exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


@registry_guard
def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version of the registered model; empty only when the model does not exist.

    Any other registry error (a server that is down, a timeout, a permission error) propagates: reading
    it as "no aliases" would make "nothing in production" out of an outage.
    """
    try:
        return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}
    except MlflowException as exc:
        if _not_found(exc):
            return {}
        raise


@registry_guard
def version_in_stage(client: MlflowClient, name: str, stage: str) -> str | None:
    """THE resolver: the version the alias `stage` points at, or None. Every reader of stages uses this."""
    if stage not in ALIASES:
        raise ValueError(f"unknown stage '{stage}'; choose one of {', '.join(ALIASES)}")
    return version_with_alias(client, name, stage)


@registry_guard
def version_with_alias(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version any alias (a stage, or one a person added, e.g. ``canary``) points at, or None."""
    return aliases(client, name).get(alias)


@registry_guard
def newest_version(client: MlflowClient, name: str) -> str | None:
    numbers = [int(v.version) for v in client.search_model_versions(f"name = '{name}'")]
    return str(max(numbers)) if numbers else None


def _set_legacy_stage(client: MlflowClient, name: str, version: str, stage: str) -> None:
    with warnings.catch_warnings():  # deprecated in MLflow 3, still read by older API clients
        warnings.simplefilter("ignore")
        client.transition_model_version_stage(name, version, _LEGACY[stage], archive_existing_versions=False)


def _mark(client: MlflowClient, name: str, version: str, stage: str, reason: str,
          also: Callable[[VersionRecord], None] | None = None) -> VersionRecord:
    """Record `stage` (and anything `also` changes) in the version's record and its legacy stage field."""

    def change(record: VersionRecord) -> None:
        record.set_stage(stage, reason)
        if also is not None:
            also(record)

    updated = records.update_record(client, name, version, change)
    _set_legacy_stage(client, name, version, stage)
    return updated


@registry_guard
@_under_lease
def move_to_staging(client: MlflowClient, name: str, version: str, reason: str) -> StageMove:
    """Point ``staging`` at `version`; a different version that was in staging goes back to none."""
    version = str(version)
    if version_in_stage(client, name, PRODUCTION) == version:
        raise RegistryStateError(f"{name} version {version} is already in production; nothing to stage")
    previous = version_in_stage(client, name, STAGING)
    client.set_registered_model_alias(name, STAGING, version)
    _mark(client, name, version, STAGING, reason)
    replaced = previous if previous and previous != version else None
    if replaced:
        _mark(client, name, replaced, NONE, f"replaced in staging by version {version}")
    return StageMove(name, version, STAGING, replaced, NONE if replaced else None, reason)


@registry_guard
@_under_lease
def promote_to_production(client: MlflowClient, name: str, version: str, reason: str) -> StageMove:
    """Point ``production`` at `version`; the replaced one is archived and becomes ``last-known-good``."""
    version = str(version)
    previous = version_in_stage(client, name, PRODUCTION)
    if previous == version:
        raise RegistryStateError(f"{name} version {version} is already in production")
    # aliases first (they are the truth), then the records; a run stopped in between is repaired by the next
    # run's sync_stage_mirrors, which archives the replaced version and points last-known-good at it
    client.set_registered_model_alias(name, PRODUCTION, version)
    if previous:
        client.set_registered_model_alias(name, LAST_KNOWN_GOOD, previous)
    if version_in_stage(client, name, STAGING) == version:
        client.delete_registered_model_alias(name, STAGING)
    _mark(client, name, version, PRODUCTION, reason)
    if previous:
        _mark(client, name, previous, ARCHIVED, f"replaced in production by version {version}")
    return StageMove(name, version, PRODUCTION, previous, ARCHIVED if previous else None, reason)


@registry_guard
@_under_lease
def rollback_production(client: MlflowClient, name: str, reason: str, target: str | None = None) -> StageMove:
    """Put `target` (default: ``last-known-good``) back in production; the current one becomes rolled_back.

    The reason is recorded on both versions. ``last-known-good`` then moves to the newest other archived
    version, or is removed when there is none. The replaced version's record learns of the rollback before
    the alias moves, so a run stopped in between is repaired as a rollback (rolled_back, never the
    last-known-good), not as an ordinary replacement.
    """
    current = version_in_stage(client, name, PRODUCTION)
    target = str(target) if target is not None else version_in_stage(client, name, LAST_KNOWN_GOOD)
    if target is None:
        raise RegistryStateError(f"{name}: no last-known-good version to roll back to; pass --version N")
    if target == current:
        raise RegistryStateError(f"{name} version {target} is already in production; nothing to roll back")
    try:
        client.get_model_version(name, target)
    except MlflowException as exc:
        if _not_found(exc):
            raise RegistryStateError(f"{name} has no version {target}; pass an existing --version") from None
        raise
    if current:
        records.update_record(client, name, current, lambda record: record.record_rollback("replaced", reason, target))
    client.set_registered_model_alias(name, PRODUCTION, target)
    if version_in_stage(client, name, STAGING) == target:
        client.delete_registered_model_alias(name, STAGING)
    _mark(client, name, target, PRODUCTION, f"rollback: {reason}",
          also=lambda record: record.record_rollback("restored", reason, current))
    if current:
        _mark(client, name, current, ROLLED_BACK, f"rolled back: {reason}")
    _reset_last_known_good(client, name, exclude={target, str(current)})
    return StageMove(name, target, PRODUCTION, current, ROLLED_BACK if current else None, f"rollback: {reason}")


def _reset_last_known_good(client: MlflowClient, name: str, exclude: set[str]) -> None:
    archived = [(record.production_since or "", int(version)) for version, record in records.all_records(client, name)
                if record.stage == ARCHIVED and version not in exclude]
    if archived:
        client.set_registered_model_alias(name, LAST_KNOWN_GOOD, str(max(archived)[1]))
    elif version_in_stage(client, name, LAST_KNOWN_GOOD) is not None:
        client.delete_registered_model_alias(name, LAST_KNOWN_GOOD)


def _was_rolled_back(record: VersionRecord) -> bool:
    """The version's newest rollback event replaced it since it entered production (a rollback under way)."""
    last = record.rollbacks[-1] if record.rollbacks else None
    return last is not None and last.role == "replaced" and last.at >= (record.production_since or "")


@registry_guard
@_under_lease
def sync_stage_mirrors(client: MlflowClient, name: str) -> list[str]:
    """Make records, aliases and legacy stages agree with the ``production`` and ``staging`` aliases.

    The aliases are the truth: a person may move one in the MLflow UI, and a run may stop between two
    registry writes. This brings everything else in line and returns what it changed, as lines:

    - a staging alias on the production version is stale (a promotion stopped before removing it): removed;
    - a version holding an alias whose record says otherwise takes that stage;
    - a version whose record says production but which lost the alias is archived and becomes
      ``last-known-good`` (it is the production version replaced most recently), unless its record shows a
      rollback under way (then rolled_back); one whose record says staging goes back to none;
    - ``last-known-good`` never points at the production version;
    - the legacy stage field follows the record; a production version without a passing gate record is flagged.
    """
    current = aliases(client, name)
    changes: list[str] = []
    production = current.get(PRODUCTION)
    for alias in (STAGING, LAST_KNOWN_GOOD):
        if production is not None and current.get(alias) == production:
            client.delete_registered_model_alias(name, alias)
            del current[alias]
            changes.append(f"version {production}: removed the stale '{alias}' alias (it is in production)")
    for number, record in records.all_records(client, name):
        stage = record.stage
        held = [s for s in (PRODUCTION, STAGING) if current.get(s) == number]
        if held and stage != held[0]:
            _mark(client, name, number, held[0], "alias moved outside the pipeline (e.g. in the MLflow UI)")
            changes.append(f"version {number}: tag {stage if stage != NONE else 'unset'} -> {held[0]} "
                           "(follows its alias)")
        elif not held and stage in STAGES:
            new = NONE if stage == STAGING else ROLLED_BACK if _was_rolled_back(record) else ARCHIVED
            _mark(client, name, number, new, f"lost the {stage} alias outside the pipeline")
            if new == ARCHIVED:
                client.set_registered_model_alias(name, LAST_KNOWN_GOOD, number)
                current[LAST_KNOWN_GOOD] = number
            changes.append(f"version {number}: tag {stage} -> {new} (its alias was moved)")
    if LAST_KNOWN_GOOD not in current:  # e.g. removed above, or a rollback stopped before resetting it
        _reset_last_known_good(client, name, exclude={production} if production else set())
        restored = version_with_alias(client, name, LAST_KNOWN_GOOD)
        if restored is not None:
            changes.append(f"version {restored}: '{LAST_KNOWN_GOOD}' (the newest archived version)")
    changes.extend(_sync_legacy_stages(client, name))
    changes.extend(flag_ungated_production(client, name))
    return changes


def _sync_legacy_stages(client: MlflowClient, name: str) -> list[str]:
    changed = []
    for version, record in records.all_versions(client, name):
        if version.current_stage not in (None, _LEGACY[record.stage]):
            _set_legacy_stage(client, name, str(version.version), record.stage)
            changed.append(f"version {version.version}: legacy stage {version.current_stage} -> {_LEGACY[record.stage]}")
    return changed


def production_flag(record: VersionRecord, version: str) -> str | None:
    """Why a production version deserves a flag (no passing gate record), or None."""
    if record.has_passing_gate_record:
        return None
    why = "is the bootstrap teacher (never gated)" if record.role == TEACHER else "has no passing gate record"
    return f"production version {version} {why}"


@registry_guard
def flag_ungated_production(client: MlflowClient, name: str) -> list[str]:
    """Flag the production version when it has no passing gate record; returns the warning, if any."""
    version = version_in_stage(client, name, PRODUCTION)
    if version is None:
        return []
    current = records.read_record(client, name, version)
    message = production_flag(current, version)
    if current.flag != message:
        records.update_record(client, name, version, lambda record: setattr(record, "flag", message))
    return [] if message is None else [f"FLAG: {message}"]


@registry_guard
def stage_table(client: MlflowClient, name: str) -> list[dict[str, str]]:
    """One row per version: version, role, stage, aliases, gate decisions, rollout, flag (for printing)."""
    current = aliases(client, name)
    rows = []
    for number, record in records.all_records(client, name):
        held = ", ".join(alias for alias, version in current.items() if version == number)
        rows.append({"version": number, "role": record.role, "stage": record.stage, "aliases": held,
                     "gates": "pass" if record.has_passing_gate_record else
                     (record.gates["offline"].decision if "offline" in record.gates else "-"),
                     "rollout": record.rollout.label if record.rollout.share is not None else "",
                     "flag": record.flag or ""})
    return rows
