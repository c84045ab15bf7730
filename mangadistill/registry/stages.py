"""Registry stages as MLflow aliases: the one resolver, and every move (stage, promote, archive, roll back).

MLflow 3's UI shows and edits aliases, not the deprecated stages, so an alias is the source of truth:

- ``staging`` and ``production`` point at the version in that stage;
- ``last-known-good`` points at the production version that was replaced most recently (the rollback target).

Every move also mirrors the stage into the version tag ``stage`` (staging, production, archived,
rolled_back, none) and into the legacy stage field (Staging, Production, Archived, None) for API clients
that still read it. A person who moves an alias in the UI moves the stage: `version_in_stage` reads only
aliases, and `sync_stage_mirrors` brings tags and legacy stages in line with them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mangadistill.errors import UserError

STAGING, PRODUCTION, LAST_KNOWN_GOOD = "staging", "production", "last-known-good"
STAGES = (STAGING, PRODUCTION)
ARCHIVED, ROLLED_BACK, NONE = "archived", "rolled_back", "none"
STAGE_TAG = "stage"
FLAG_TAG = "stage.flag"
#: Tags of a gate decision that together make a passing gate record (written by `promote_intent`).
GATE_DECISION_TAGS = ("gate.offline.decision", "gate.shadow.decision")
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


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version of the registered model (empty when the model does not exist)."""
    try:
        return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}
    except MlflowException:
        return {}


def version_in_stage(client: MlflowClient, name: str, stage: str) -> str | None:
    """THE resolver: the version the alias `stage` points at, or None. Every reader of stages uses this."""
    if stage not in (*STAGES, LAST_KNOWN_GOOD):
        raise ValueError(f"unknown stage '{stage}'; choose one of {', '.join((*STAGES, LAST_KNOWN_GOOD))}")
    return aliases(client, name).get(stage)


def _set_legacy_stage(client: MlflowClient, name: str, version: str, stage: str) -> None:
    with warnings.catch_warnings():  # deprecated in MLflow 3, still read by older API clients
        warnings.simplefilter("ignore")
        client.transition_model_version_stage(name, version, _LEGACY[stage], archive_existing_versions=False)


def _mark(client: MlflowClient, name: str, version: str, stage: str, reason: str) -> None:
    """Mirror `stage` into the version's tag and legacy stage field, with when and why."""
    if stage != PRODUCTION and FLAG_TAG in client.get_model_version(name, version).tags:
        client.delete_model_version_tag(name, version, FLAG_TAG)  # the flag is about the production version
    client.set_model_version_tag(name, version, STAGE_TAG, stage)
    client.set_model_version_tag(name, version, "stage.changed_at", now())
    client.set_model_version_tag(name, version, "stage.reason", reason[:500])
    _set_legacy_stage(client, name, version, stage)


def _versions(client: MlflowClient, name: str) -> list:
    return sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))


def move_to_staging(client: MlflowClient, name: str, version: str, reason: str) -> StageMove:
    """Point ``staging`` at `version`; a different version that was in staging goes back to none."""
    version = str(version)
    if version_in_stage(client, name, PRODUCTION) == version:
        raise RegistryStateError(f"{name} version {version} is already in production; nothing to stage")
    previous = version_in_stage(client, name, STAGING)
    client.set_registered_model_alias(name, STAGING, version)
    _mark(client, name, version, STAGING, reason)
    if previous and previous != version:
        _mark(client, name, previous, NONE, f"replaced in staging by version {version}")
    return StageMove(name, version, STAGING, previous if previous != version else None,
                     NONE if previous and previous != version else None, reason)


def promote_to_production(client: MlflowClient, name: str, version: str, reason: str) -> StageMove:
    """Point ``production`` at `version`; the replaced one is archived and becomes ``last-known-good``."""
    version = str(version)
    previous = version_in_stage(client, name, PRODUCTION)
    if previous == version:
        raise RegistryStateError(f"{name} version {version} is already in production")
    client.set_registered_model_alias(name, PRODUCTION, version)
    if version_in_stage(client, name, STAGING) == version:
        client.delete_registered_model_alias(name, STAGING)
    _mark(client, name, version, PRODUCTION, reason)
    client.set_model_version_tag(name, version, "production_since", now())
    if previous:
        _mark(client, name, previous, ARCHIVED, f"replaced in production by version {version}")
        client.set_registered_model_alias(name, LAST_KNOWN_GOOD, previous)
    return StageMove(name, version, PRODUCTION, previous, ARCHIVED if previous else None, reason)


def rollback_production(client: MlflowClient, name: str, reason: str, target: str | None = None) -> StageMove:
    """Put `target` (default: ``last-known-good``) back in production; the current one becomes rolled_back.

    The reason is recorded on both versions. ``last-known-good`` then moves to the newest other archived
    version, or is removed when there is none.
    """
    current = version_in_stage(client, name, PRODUCTION)
    target = str(target) if target is not None else version_in_stage(client, name, LAST_KNOWN_GOOD)
    if target is None:
        raise RegistryStateError(f"{name}: no last-known-good version to roll back to; pass --version N")
    if target == current:
        raise RegistryStateError(f"{name} version {target} is already in production; nothing to roll back")
    client.get_model_version(name, target)  # raises if the version does not exist
    client.set_registered_model_alias(name, PRODUCTION, target)
    if version_in_stage(client, name, STAGING) == target:
        client.delete_registered_model_alias(name, STAGING)
    stamp = now()
    _mark(client, name, target, PRODUCTION, f"rollback: {reason}")
    client.set_model_version_tag(name, target, "production_since", stamp)
    client.set_model_version_tag(name, target, "rollback.restored_from", str(current))
    client.set_model_version_tag(name, target, "rollback.reason", reason[:500])
    client.set_model_version_tag(name, target, "rollback.at", stamp)
    if current:
        _mark(client, name, current, ROLLED_BACK, f"rolled back: {reason}")
        client.set_model_version_tag(name, current, "rollback.replaced_by", target)
        client.set_model_version_tag(name, current, "rollback.reason", reason[:500])
        client.set_model_version_tag(name, current, "rollback.at", stamp)
    _reset_last_known_good(client, name, exclude={target, str(current)})
    return StageMove(name, target, PRODUCTION, current, ROLLED_BACK if current else None, f"rollback: {reason}")


def _reset_last_known_good(client: MlflowClient, name: str, exclude: set[str]) -> None:
    archived = [v for v in _versions(client, name)
                if v.tags.get(STAGE_TAG) == ARCHIVED and str(v.version) not in exclude]
    archived.sort(key=lambda v: (v.tags.get("production_since", ""), int(v.version)))
    if archived:
        client.set_registered_model_alias(name, LAST_KNOWN_GOOD, str(archived[-1].version))
    elif version_in_stage(client, name, LAST_KNOWN_GOOD) is not None:
        client.delete_registered_model_alias(name, LAST_KNOWN_GOOD)


def has_passing_gate_record(tags: dict[str, str]) -> bool:
    return all(tags.get(key) == "pass" for key in GATE_DECISION_TAGS)


def sync_stage_mirrors(client: MlflowClient, name: str) -> list[str]:
    """Make tags and legacy stages agree with the aliases (e.g. after a person moved one in the UI).

    A version whose tag says production but which no longer holds the alias is archived (and becomes
    last-known-good if that alias is free); one whose tag says staging goes back to none. A production
    version without a passing gate record is flagged (tag ``stage.flag``). Returns what changed, as lines.
    """
    current = aliases(client, name)
    changes: list[str] = []
    for v in _versions(client, name):
        tag, number = v.tags.get(STAGE_TAG), str(v.version)
        held = [stage for stage in STAGES if current.get(stage) == number]
        if held and tag != held[0]:
            _mark(client, name, number, held[0], "alias moved outside the pipeline (e.g. in the MLflow UI)")
            if held[0] == PRODUCTION:
                client.set_model_version_tag(name, number, "production_since", now())
            changes.append(f"version {number}: tag {tag or 'unset'} -> {held[0]} (follows its alias)")
        elif not held and tag in STAGES:
            new = ARCHIVED if tag == PRODUCTION else NONE
            _mark(client, name, number, new, f"lost the {tag} alias outside the pipeline")
            if new == ARCHIVED and LAST_KNOWN_GOOD not in current:
                client.set_registered_model_alias(name, LAST_KNOWN_GOOD, number)
                current[LAST_KNOWN_GOOD] = number
            changes.append(f"version {number}: tag {tag} -> {new} (its alias was moved)")
    changes.extend(flag_ungated_production(client, name))
    return changes


def flag_ungated_production(client: MlflowClient, name: str) -> list[str]:
    """Tag the production version ``stage.flag`` when it has no passing gate record; returns the warning, if any."""
    version = version_in_stage(client, name, PRODUCTION)
    if version is None:
        return []
    tags = client.get_model_version(name, version).tags
    if has_passing_gate_record(tags):
        if FLAG_TAG in tags:
            client.delete_model_version_tag(name, version, FLAG_TAG)
        return []
    why = "is the bootstrap teacher (never gated)" if tags.get("role") == "teacher" else "has no passing gate record"
    message = f"production version {version} {why}"
    if tags.get(FLAG_TAG) != message:
        client.set_model_version_tag(name, version, FLAG_TAG, message)
    return [f"FLAG: {message}"]


def stage_table(client: MlflowClient, name: str) -> list[dict[str, str]]:
    """One row per version: version, role, stage tag, aliases, gate decision, flag (for printing)."""
    current = aliases(client, name)
    rows = []
    for v in _versions(client, name):
        held = ", ".join(alias for alias, version in current.items() if version == str(v.version))
        rows.append({"version": str(v.version), "role": v.tags.get("role", ""), "stage": v.tags.get(STAGE_TAG, NONE),
                     "aliases": held, "gates": "pass" if has_passing_gate_record(v.tags) else
                     v.tags.get("gate.offline.decision", "-"), "rollout": v.tags.get("rollout.stage", ""),
                     "flag": v.tags.get(FLAG_TAG, "")})
    return rows
