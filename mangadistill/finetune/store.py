"""The fine-tuning server's state: files, jobs, job events and checkpoints in SQLite, file bytes on disk.

Every row is written before the server answers, so a restart (or a kill) loses nothing: `interrupted_jobs`
lists the jobs a dead process left running, and the worker resumes them from their trainer checkpoints.
Rows are stored as the JSON objects of OpenAI's API (`openai.types.FileObject`, `FineTuningJob`,
`FineTuningJobEvent`, `FineTuningJobCheckpoint`) plus the server's private columns (paths, sha256, order).

Lists come back as OpenAI pages: `after` is the id of the last object the caller has seen; files are listed
in the order asked (``desc`` by default), jobs, events and checkpoints newest first, as OpenAI lists them.
One connection serves every thread (`check_same_thread=False`) behind a lock; SQLite's WAL journal keeps a
reader from waiting on the writer.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import sqlite3
import string
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ACTIVE", "TERMINAL", "FineTuneStore", "Page", "new_id"]

#: Job statuses a job leaves only by running (`TERMINAL` ones never change again).
ACTIVE = ("validating_files", "queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")
_ALPHABET = string.ascii_letters + string.digits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, object TEXT NOT NULL,
    path TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, object TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL, object TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL, object TEXT NOT NULL,
    path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_job ON checkpoints (job_id, seq);
"""


def new_id(prefix: str) -> str:
    """An OpenAI-style id, e.g. ``file-`` + 24 random letters and digits."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


@dataclass(frozen=True)
class Page:
    """One page of a list: OpenAI's ``{"object": "list", "data": [...], "has_more": ...}``."""

    data: list[dict[str, Any]]
    has_more: bool

    def body(self, *, ids: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"object": "list", "data": self.data, "has_more": self.has_more}
        if ids:  # the files list also names its first and last ids
            body["first_id"] = self.data[0]["id"] if self.data else None
            body["last_id"] = self.data[-1]["id"] if self.data else None
        return body


class FineTuneStore:
    """Files, jobs, events and checkpoints of one server, under `root` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.files_dir = self.root / "files"
        self.jobs_dir = self.root / "jobs"
        for folder in (self.files_dir, self.jobs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "jobs.sqlite", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---------------------------------------------------------------------------------------------- files
    def add_file(self, source: Path, *, filename: str, purpose: str) -> dict[str, Any]:
        """Move the uploaded file at `source` into the store; returns its ``file`` object."""
        file_id = new_id("file-")
        path = self.files_dir / file_id
        shutil.move(str(source), path)
        obj = {"id": file_id, "object": "file", "bytes": path.stat().st_size, "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
               "status_details": None}
        with self._transaction() as db:
            db.execute("INSERT INTO files (id, object, path, sha256) VALUES (?, ?, ?, ?)",
                       (file_id, json.dumps(obj), str(path), _sha256(path)))
        return obj

    def add_file_bytes(self, data: bytes, *, filename: str, purpose: str) -> dict[str, Any]:
        """Store `data` as a file the server made itself (e.g. a job's results)."""
        staging = self.files_dir / f".{new_id('new-')}"
        staging.write_bytes(data)
        return self.add_file(staging, filename=filename, purpose=purpose)

    def get_file(self, file_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT object FROM files WHERE id = ?", (file_id,))
        return json.loads(rows[0][0]) if rows else None

    def file_path(self, file_id: str) -> Path | None:
        rows = self._rows("SELECT path FROM files WHERE id = ?", (file_id,))
        return Path(rows[0][0]) if rows else None

    def list_files(self, *, purpose: str | None = None, after: str | None = None, limit: int = 10000,
                   order: str = "desc") -> Page:
        direction, compare, unknown = ("DESC", "<", "seq + 1") if order == "desc" else ("ASC", ">", "seq - 1")
        sql, args = "SELECT object FROM files WHERE 1 = 1", []
        if after:  # an unknown cursor lists from the start
            sql += f" AND seq {compare} COALESCE((SELECT seq FROM files WHERE id = ?), {unknown})"
            args.append(after)
        rows = [json.loads(r[0]) for r in self._rows(f"{sql} ORDER BY seq {direction}", tuple(args))]
        if purpose:
            rows = [r for r in rows if r["purpose"] == purpose]
        return Page(rows[:limit], len(rows) > limit)

    # ----------------------------------------------------------------------------------------------- jobs
    def add_job(self, job: dict[str, Any]) -> dict[str, Any]:
        with self._transaction() as db:
            db.execute("INSERT INTO jobs (id, object) VALUES (?, ?)", (job["id"], json.dumps(job)))
        return job

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT object FROM jobs WHERE id = ?", (job_id,))
        return json.loads(rows[0][0]) if rows else None

    def update_job(self, job_id: str, *, only_if_status: tuple[str, ...] | None = None,
                   **fields: Any) -> dict[str, Any] | None:
        """Set fields of a job; with `only_if_status`, only when its status is one of those (else None)."""
        with self._transaction() as db:
            row = db.execute("SELECT object FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            job = json.loads(row[0])
            if only_if_status is not None and job["status"] not in only_if_status:
                return None
            job.update(fields)
            db.execute("UPDATE jobs SET object = ? WHERE id = ?", (json.dumps(job), job_id))
        return job

    def start_attempt(self, job_id: str) -> int:
        """Count a (re)start of the job's training; returns the attempt number (1 the first time)."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET attempts = attempts + 1 WHERE id = ?", (job_id,))
            return int(db.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])

    def list_jobs(self, *, after: str | None = None, limit: int = 20,
                  metadata: Mapping[str, str] | None = None) -> Page:
        sql, args = "SELECT object FROM jobs", []
        if after:
            sql += " WHERE seq < COALESCE((SELECT seq FROM jobs WHERE id = ?), seq + 1)"
            args.append(after)
        jobs = [json.loads(r[0]) for r in self._rows(f"{sql} ORDER BY seq DESC", tuple(args))]
        if metadata:
            jobs = [j for j in jobs if all((j.get("metadata") or {}).get(k) == v for k, v in metadata.items())]
        return Page(jobs[:limit], len(jobs) > limit)

    def next_queued_job(self) -> dict[str, Any] | None:
        """The oldest queued job."""
        for (text,) in self._rows("SELECT object FROM jobs ORDER BY seq ASC"):
            job = json.loads(text)
            if job["status"] == "queued":
                return job
        return None

    def interrupted_jobs(self) -> list[dict[str, Any]]:
        """Jobs a process left running or validating (call at start-up, before the worker runs)."""
        return [job for (text,) in self._rows("SELECT object FROM jobs ORDER BY seq ASC")
                if (job := json.loads(text))["status"] in ("validating_files", "running")]

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    # --------------------------------------------------------------------------------------------- events
    def add_event(self, job_id: str, message: str, *, level: str = "info", type: str = "message",
                  data: dict[str, Any] | None = None) -> dict[str, Any]:
        event = {"id": new_id("ftevent-"), "object": "fine_tuning.job.event", "created_at": int(time.time()),
                 "level": level, "message": message, "data": data or {}, "type": type}
        with self._transaction() as db:
            db.execute("INSERT INTO events (id, job_id, object) VALUES (?, ?, ?)",
                       (event["id"], job_id, json.dumps(event)))
        return event

    def list_events(self, job_id: str, *, after: str | None = None, limit: int = 20) -> Page:
        return self._page("events", job_id, after, limit)

    # ---------------------------------------------------------------------------------------- checkpoints
    def put_checkpoint(self, job_id: str, checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
        """Add (or, for the same id, replace) a checkpoint of `job_id` whose adapter lies at `path`."""
        with self._transaction() as db:
            db.execute("INSERT INTO checkpoints (id, job_id, object, path) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (id) DO UPDATE SET object = excluded.object, path = excluded.path",
                       (checkpoint["id"], job_id, json.dumps(checkpoint), str(path)))
        return checkpoint

    def list_checkpoints(self, job_id: str, *, after: str | None = None, limit: int = 10) -> Page:
        return self._page("checkpoints", job_id, after, limit)

    def checkpoint_path(self, model_name: str) -> Path | None:
        """The adapter folder of the checkpoint served as `model_name`."""
        for text, path in self._rows("SELECT object, path FROM checkpoints"):
            if json.loads(text)["fine_tuned_model_checkpoint"] == model_name:
                return Path(path)
        return None

    def fine_tuned_models(self) -> dict[str, dict[str, Any]]:
        """Model name -> job, for every succeeded job."""
        return {job["fine_tuned_model"]: job for (text,) in self._rows("SELECT object FROM jobs ORDER BY seq")
                if (job := json.loads(text))["status"] == "succeeded" and job.get("fine_tuned_model")}

    def _page(self, table: str, job_id: str, after: str | None, limit: int) -> Page:
        sql, args = f"SELECT object FROM {table} WHERE job_id = ?", [job_id]
        if after:
            sql += f" AND seq < COALESCE((SELECT seq FROM {table} WHERE id = ?), seq + 1)"
            args.append(after)
        rows = self._rows(f"{sql} ORDER BY seq DESC LIMIT ?", (*args, limit + 1))
        return Page([json.loads(r[0]) for r in rows[:limit]], len(rows) > limit)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
