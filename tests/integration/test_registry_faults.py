"""Registry faults on a real SQLite MLflow registry: they stop a move and never decide one.

- a registry error other than "model does not exist" (injected into a real client) stops with a
  `RegistryError` and moves no alias; "does not exist" still reads as an empty registry;
- a run killed between ANY two registry writes of a promotion or a rollback leaves a state that the next
  run's `sync_stage_mirrors` reports and repairs (one production version, records, legacy stages and
  last-known-good consistent), and re-running the move completes it (idempotent);
- two promotions at once (two processes) end with exactly one version in production, by alias and record.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mangadistill.lifecycle import record as records
from mangadistill.lifecycle import stages
from mangadistill.lifecycle.faults import RegistryError
from mangadistill.lifecycle.record import ARCHIVED, PRODUCTION, ROLLED_BACK, VersionRecord

WRITES = {"set_registered_model_alias", "delete_registered_model_alias", "set_model_version_tag",
          "delete_model_version_tag", "transition_model_version_stage"}
#: Writes that are not stage moves: the move lease. A killed process does not release it either.
LEASE_WRITES = {"set_registered_model_tag", "delete_registered_model_tag"}


class Killed(BaseException):
    """The process died here (not an Exception: nothing may catch and handle it)."""


class FaultyClient:
    """A real `MlflowClient` whose `fail_at`-th registry write (1-based) kills the run, or raises `error`."""

    def __init__(self, client: MlflowClient, fail_at: int | None = None, error: BaseException | None = None) -> None:
        self._client, self._fail_at, self._error, self.writes, self.dead = client, fail_at, error, 0, False

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name not in WRITES | LEASE_WRITES:
            return attribute

        def write(*args, **kwargs):
            if self.dead:
                raise Killed("a killed process writes nothing more (its move lease stays behind)")
            if name in WRITES:
                self.writes += 1
                if self._fail_at is not None and self.writes == self._fail_at:
                    self.dead = self._error is None
                    raise self._error or Killed(f"killed before write {self.writes} ({name})")
            return attribute(*args, **kwargs)

        return write


def _registry(client: MlflowClient, name: str, versions: int) -> list[str]:
    """`name` with `versions` versions (no weights needed to move stages), every one a plain student."""
    client.create_registered_model(name)
    created = [str(client.create_model_version(name, source=f"file:///nowhere/{name}/{i}").version)
               for i in range(versions)]
    for version in created:
        records.write_record(client, name, version, VersionRecord(family="intent"))
    return created


def _state(client: MlflowClient, name: str) -> tuple[dict[str, str], dict[str, VersionRecord], dict[str, str]]:
    legacy = {str(v.version): v.current_stage for v in client.search_model_versions(f"name = '{name}'")}
    return stages.aliases(client, name), dict(records.all_records(client, name)), legacy


def _assert_consistent(client: MlflowClient, name: str) -> str:
    """One production version by alias and by record; the other aliases and the legacy stages agree."""
    aliases, recorded, legacy = _state(client, name)
    production = aliases["production"]
    assert [v for v, r in recorded.items() if r.stage == PRODUCTION] == [production], (aliases, recorded)
    assert aliases.get("staging") != production and aliases.get("last-known-good") != production, aliases
    if "last-known-good" in aliases:
        assert recorded[aliases["last-known-good"]].stage == ARCHIVED, (aliases, recorded)
    expected = {"production": "Production", "staging": "Staging", "archived": "Archived", "rolled_back": "Archived",
                "none": "None"}
    assert legacy == {v: expected[r.stage] for v, r in recorded.items()}, (legacy, recorded)
    return production


def _writes_of(move) -> int:
    counter = FaultyClient(MlflowClient())
    move(counter)
    return counter.writes


@pytest.fixture(autouse=True)
def quick_lease(monkeypatch):
    """Lease timings scaled down (a killed run's lease is waited out in a second, not a minute)."""
    monkeypatch.setattr(stages, "LOCK_SETTLE_S", 0.01)
    monkeypatch.setattr(stages, "LOCK_TTL_S", 0.5)
    monkeypatch.setattr(stages, "LOCK_WAIT_S", 5.0)


def test_a_registry_error_stops_and_moves_nothing():
    client = MlflowClient()
    v1, v2 = _registry(client, "faults-error", 2)
    stages.promote_to_production(client, "faults-error", v1, "setup")
    stages.move_to_staging(client, "faults-error", v2, "setup")
    before = _state(client, "faults-error")
    outage = FaultyClient(client, fail_at=1, error=MlflowException("API request failed: 503 Service Unavailable"))
    with pytest.raises(RegistryError, match="503 Service Unavailable.*nothing further was changed"):
        stages.promote_to_production(outage, "faults-error", v2, "should not happen")
    assert _state(client, "faults-error") == before
    # a read that fails is no answer either: it never turns into "nothing in production"
    reading = FaultyClient(client)
    reading.get_registered_model = lambda name: (_ for _ in ()).throw(MlflowException("permission denied"))
    with pytest.raises(RegistryError, match="permission denied"):
        stages.version_in_stage(reading, "faults-error", "production")
    assert stages.version_in_stage(client, "no-such-model", "production") is None  # does not exist: empty


@pytest.mark.parametrize("move", ["promote", "rollback"])
def test_a_kill_between_any_two_writes_is_repaired_by_the_next_run(move):
    def setup(client, name):
        v1, v2, v3 = _registry(client, name, 3)
        stages.promote_to_production(client, name, v1, "setup")
        if move == "promote":
            stages.promote_to_production(client, name, v2, "setup")  # v1 archived, last-known-good
            stages.move_to_staging(client, name, v3, "setup")
        else:
            stages.promote_to_production(client, name, v2, "setup")
            stages.promote_to_production(client, name, v3, "setup")  # v2 last-known-good, v1 archived
        return v1, v2, v3

    def run(client, name):
        if move == "promote":
            return stages.promote_to_production(client, name, "3", "promoted")
        return stages.rollback_production(client, name, "bad p95")

    client = MlflowClient()
    setup(client, f"faults-count-{move}")
    total = _writes_of(lambda c: run(c, f"faults-count-{move}"))
    assert total >= 5
    for kill_at in range(1, total + 1):
        name = f"faults-{move}-{kill_at}"
        v1, v2, v3 = setup(client, name)
        with pytest.raises(Killed):
            run(FaultyClient(client, fail_at=kill_at), name)
        assert stages.LOCK_TAG in client.get_registered_model(name).tags  # the dead run's lease is still there
        stages.sync_stage_mirrors(client, name)  # the next run starts here: waits the lease out, then repairs
        production = _assert_consistent(client, name)
        if move == "promote":
            assert production in (v2, v3)
            if production != v3:
                run(client, name)  # re-run: completes the promotion
            assert _assert_consistent(client, name) == v3
            aliases, recorded, _ = _state(client, name)
            assert aliases["last-known-good"] == v2 and recorded[v2].stage == ARCHIVED, (kill_at, aliases)
        else:
            assert production in (v2, v3)
            if production != v2:
                run(client, name)  # re-run: completes the rollback
            assert _assert_consistent(client, name) == v2
            aliases, recorded, _ = _state(client, name)
            # the version rolled back from is never the rollback target
            assert recorded[v3].stage == ROLLED_BACK and aliases.get("last-known-good") != v3, (kill_at, aliases)


def _promote_many(uri: str, name: str, version: str, rounds: int, start: float) -> None:
    """One life-cycle run (its own process) promoting `version` `rounds` times, racing another one."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    while time.time() < start:
        time.sleep(0.01)
    for _ in range(rounds):
        try:
            stages.promote_to_production(client, name, version, f"race from {version}")
        except stages.RegistryStateError:
            pass  # already in production: the other run's move came first this round


def test_two_promotions_at_once_leave_exactly_one_production_version(tmp_path: Path):
    import mlflow

    client = MlflowClient()
    v1, v2 = _registry(client, "faults-race", 2)
    uri = mlflow.get_tracking_uri()
    start = time.time() + 3
    context = multiprocessing.get_context("spawn")
    runs = [context.Process(target=_promote_many, args=(uri, "faults-race", version, 4, start)) for version in (v1, v2)]
    for process in runs:
        process.start()
    for process in runs:
        process.join(timeout=300)
        assert process.exitcode == 0
    production = _assert_consistent(client, "faults-race")  # consistent without any repair: the moves never interleaved
    assert production in (v1, v2) and stages.aliases(client, "faults-race")["last-known-good"] == ({v1, v2} - {production}).pop()
    assert [line for line in stages.sync_stage_mirrors(client, "faults-race") if not line.startswith("FLAG")] == []
