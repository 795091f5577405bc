"""The job store: one SQLite file, the single source of truth for job states.

Why SQLite and these settings: WAL lets the review loop read while the watcher
writes; ``synchronous=FULL`` makes every commit survive a power cut; ``BEGIN
IMMEDIATE`` takes the write lock before reading, so two workers can never claim the
same job. Every state change and its audit event are written in one transaction.
The store keeps no patient or matter names: those live in the job's work folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import JobNotFound, StateError, StoreError
from ..fsutil import process_alive
from .auditchain import chain_event, seal_unchained


class JobState(StrEnum):
    RECEIVED = "received"
    TRANSCRIBING = "transcribing"
    REVIEW = "review"
    APPROVED = "approved"
    RENDERED = "rendered"
    ARCHIVED = "archived"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"
    QUERY = "query"  # sent back to the author with a question (review loop)


S = JobState
ALLOWED: dict[JobState, frozenset[JobState]] = {
    S.RECEIVED: frozenset({S.TRANSCRIBING, S.QUARANTINED, S.FAILED}),
    S.TRANSCRIBING: frozenset({S.REVIEW, S.RECEIVED, S.FAILED, S.QUARANTINED}),
    S.REVIEW: frozenset({S.APPROVED, S.FAILED, S.QUERY}),
    S.APPROVED: frozenset({S.RENDERED, S.REVIEW, S.FAILED}),
    S.RENDERED: frozenset({S.ARCHIVED, S.FAILED}),
    S.ARCHIVED: frozenset(),
    S.FAILED: frozenset({S.RECEIVED, S.REVIEW, S.APPROVED, S.QUARANTINED}),
    S.QUARANTINED: frozenset(),
    S.DUPLICATE: frozenset(),
    S.QUERY: frozenset({S.REVIEW}),
}

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id            TEXT PRIMARY KEY,
        client        TEXT NOT NULL,
        state         TEXT NOT NULL,
        source_name   TEXT NOT NULL,
        content_hash  TEXT,
        duplicate_of  TEXT REFERENCES jobs(id),
        inbox_path    TEXT,
        audio_path    TEXT,
        size_bytes    INTEGER,
        duration_s    REAL,
        language      TEXT,
        priority      TEXT NOT NULL DEFAULT 'normal',
        author        TEXT,
        document_type TEXT,
        reason        TEXT,
        attempts      INTEGER NOT NULL DEFAULT 0,
        claimed_by    TEXT,
        claimed_at    REAL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL
    );
    CREATE UNIQUE INDEX jobs_content_hash ON jobs(content_hash)
        WHERE content_hash IS NOT NULL AND state NOT IN ('duplicate', 'quarantined');
    CREATE INDEX jobs_state ON jobs(state, priority, created_at);
    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        at         REAL NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        job_id     TEXT,
        from_state TEXT,
        to_state   TEXT,
        detail     TEXT
    );
    """,
    # 2: a job open in the review loop is locked to one reviewer, visibly, with expiry
    """
    ALTER TABLE jobs ADD COLUMN review_lock TEXT;
    ALTER TABLE jobs ADD COLUMN review_lock_at REAL
    """,
    # 3: tamper-evident audit chain; the encrypted archive's index (ids, hashes, dates,
    # no names); a keyed blind index (HMAC) to find a patient's or matter's jobs
    """
    ALTER TABLE events ADD COLUMN prev_hash TEXT;
    ALTER TABLE events ADD COLUMN hash TEXT;
    CREATE TABLE archive_items (
        job_id      TEXT NOT NULL REFERENCES jobs(id),
        kind        TEXT NOT NULL,
        path        TEXT NOT NULL UNIQUE,
        sha256      TEXT NOT NULL,
        size_bytes  INTEGER NOT NULL,
        age_sha256  TEXT NOT NULL,
        age_size    INTEGER NOT NULL,
        archived_at REAL NOT NULL,
        purged_at   REAL,
        PRIMARY KEY (job_id, kind)
    );
    CREATE TABLE blind_index (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        kind   TEXT NOT NULL,
        term   TEXT NOT NULL,
        PRIMARY KEY (job_id, kind, term)
    );
    CREATE INDEX blind_index_term ON blind_index(kind, term);
    CREATE INDEX events_job ON events(job_id, seq)
    """,
    # 4: what the secretary must be told about a draft (language, unreliable spans,
    # empty text): a JSON list of {"code", "text"}, no personal data
    """
    ALTER TABLE jobs ADD COLUMN warnings TEXT
    """,
)

JOB_COLUMNS = [
    "id",
    "client",
    "state",
    "source_name",
    "content_hash",
    "duplicate_of",
    "inbox_path",
    "audio_path",
    "size_bytes",
    "duration_s",
    "language",
    "priority",
    "author",
    "document_type",
    "reason",
    "attempts",
    "claimed_by",
    "claimed_at",
    "created_at",
    "updated_at",
    "review_lock",
    "review_lock_at",
    "warnings",
]


@dataclass(frozen=True)
class Job:
    """A row of the jobs table, read-only: change it through :class:`JobStore`."""

    id: str
    client: str
    state: JobState
    source_name: str
    content_hash: str | None
    duplicate_of: str | None
    inbox_path: str | None
    audio_path: str | None
    size_bytes: int | None
    duration_s: float | None
    language: str | None
    priority: str
    author: str | None
    document_type: str | None
    reason: str | None
    attempts: int
    claimed_by: str | None
    claimed_at: float | None
    created_at: float
    updated_at: float
    review_lock: str | None = None
    review_lock_at: float | None = None
    warnings: tuple[dict[str, str], ...] = ()

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        values = dict(zip(JOB_COLUMNS, row, strict=True))
        values["state"] = JobState(values["state"])
        values["warnings"] = tuple(json.loads(values["warnings"] or "[]"))
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in JOB_COLUMNS}
        data["state"] = str(self.state)
        data["warnings"] = [dict(w) for w in self.warnings]
        data["source"] = self.source_name
        for stamp in ("created_at", "updated_at", "claimed_at", "review_lock_at"):
            if data[stamp] is not None:
                data[stamp] = datetime.fromtimestamp(data[stamp], UTC).isoformat()
        return data


def worker_id() -> str:
    """Identifies a claiming process, so a stale claim of a dead process can be freed."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_job_id(now: float | None = None) -> str:
    """Sortable and readable on the phone: ``20261123-a1b2c3``."""
    stamp = datetime.fromtimestamp(now or time.time(), UTC).strftime("%Y%m%d")
    return f"{stamp}-{secrets.token_hex(3)}"


class JobStore:
    """All reads and writes of job state. One instance per process and thread."""

    def __init__(self, path: Path, *, actor: str = "system") -> None:
        self.path = path
        self.actor = actor
        try:
            self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open job store {path}: {exc}") from None
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA secure_delete=ON")  # overwritten values are zeroed
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.OperationalError as exc:  # e.g. no room for the WAL index
            self.db.close()
            raise store_fault(path, exc, "opened") from exc
        os.chmod(path, 0o600)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self.transaction():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} was written by a newer version (schema {version})",
                    hint="upgrade this program",
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
            if version < len(MIGRATIONS):
                seal_unchained(self.db)  # entries older than the audit chain, once

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: take the write lock first, so read-then-write is safe."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise store_fault(self.path, exc, "written") from exc
            raise StoreError(f"job store is busy: {exc}", hint="try again") from None
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as exc:
            # SQLite may have rolled back already (disk full, I/O error): nothing was
            # written either way, and the caller gets one line instead of a traceback.
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise store_fault(self.path, exc, "written") from exc
            raise

    def _event(
        self,
        action: str,
        job_id: str | None,
        from_state: str | None = None,
        to_state: str | None = None,
        detail: str | None = None,
    ) -> None:
        cursor = self.db.execute(
            "INSERT INTO events (at, actor, action, job_id, from_state, to_state, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), self.actor, action, job_id, from_state, to_state, detail),
        )
        chain_event(self.db, cursor.lastrowid)

    def record(self, action: str, job_id: str | None = None, detail: str | None = None) -> None:
        """Audit an action that changes no state: view, export, decryption, purge, key
        rotation. ``detail`` must never hold personal data (no names, no text)."""
        with self.transaction():
            self._event(action, job_id, detail=detail)

    def insert_job(self, **values: Any) -> Job:
        """Create a job and its ``created`` event in one transaction."""
        now = time.time()
        values.setdefault("created_at", now)
        values["updated_at"] = now
        values["state"] = str(values.get("state", JobState.RECEIVED))
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.transaction():
            self.db.execute(
                f"INSERT INTO jobs ({columns}) VALUES ({marks})", tuple(values.values())
            )
            self._event("created", values["id"], None, values["state"], values.get("reason"))
        return self.get(values["id"])

    def get(self, job_id: str) -> Job:
        row = self.db.execute(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id!r}", hint="see `transcribe status`")
        return Job.from_row(row)

    def find_by_hash(self, content_hash: str) -> Job | None:
        """The one live job holding this content, if any (duplicates and quarantine excluded)."""
        row = self.db.execute(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE content_hash = ? "
            "AND state NOT IN ('duplicate', 'quarantined')",
            (content_hash,),
        ).fetchone()
        return Job.from_row(row) if row else None

    def jobs(self, *states: JobState, client: str | None = None) -> list[Job]:
        """Jobs in queue order: urgent first, then oldest."""
        sql = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE 1=1"
        params: list[Any] = []
        if states:
            sql += f" AND state IN ({', '.join('?' for _ in states)})"
            params += [str(s) for s in states]
        if client:
            sql += " AND client = ?"
            params.append(client)
        sql += " ORDER BY priority = 'urgent' DESC, created_at, id"
        return [Job.from_row(row) for row in self.db.execute(sql, params)]

    def update(self, job_id: str, **values: Any) -> None:
        """Change bookkeeping columns (not the state) of one job."""
        if "state" in values:
            raise ValueError("use transition() to change a job's state")
        values = _columns(values)
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self.transaction():
            cursor = self.db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id)
            )
            if cursor.rowcount != 1:
                raise JobNotFound(f"no job {job_id!r}")

    def transition(
        self,
        job_id: str,
        to_state: JobState,
        *,
        expect: JobState | tuple[JobState, ...] | None = None,
        reason: str | None = None,
        **values: Any,
    ) -> Job:
        """Move a job to a new state, checked against ALLOWED, audited, atomically."""
        with self.transaction():
            job = self.get(job_id)
            expected = (expect,) if isinstance(expect, JobState) else expect
            if expected and job.state not in expected:
                raise StateError(f"job {job_id} is {job.state}, not {'/'.join(expected)}")
            if to_state not in ALLOWED[job.state]:
                raise StateError(f"job {job_id} cannot go from {job.state} to {to_state}")
            values = _columns(values)
            values.update(state=str(to_state), reason=reason, updated_at=time.time())
            assignments = ", ".join(f"{name} = ?" for name in values)
            self.db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id)
            )
            self._event("state", job_id, str(job.state), str(to_state), reason)
        return self.get(job_id)

    def claim_next(self, *, states: tuple[JobState, ...] = (JobState.RECEIVED,)) -> Job | None:
        """Atomically take the next job to transcribe: urgent first, then oldest."""
        with self.transaction():
            row = self.db.execute(
                f"SELECT id FROM jobs WHERE state IN ({', '.join('?' for _ in states)}) "
                "AND inbox_path IS NULL "
                "ORDER BY priority = 'urgent' DESC, created_at, id LIMIT 1",
                [str(s) for s in states],
            ).fetchone()
            if row is None:
                return None
            job = self.get(row[0])
            self.db.execute(
                "UPDATE jobs SET state = ?, claimed_by = ?, claimed_at = ?, "
                "attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (str(JobState.TRANSCRIBING), worker_id(), time.time(), time.time(), job.id),
            )
            self._event("state", job.id, str(job.state), str(JobState.TRANSCRIBING), "claimed")
        return self.get(job.id)

    def claim(self, job_id: str) -> Job | None:
        """Take one given job if it is still waiting (another worker may have taken it)."""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE jobs SET state = ?, claimed_by = ?, claimed_at = ?, "
                "attempts = attempts + 1, updated_at = ? "
                "WHERE id = ? AND state = ? AND inbox_path IS NULL",
                (
                    str(JobState.TRANSCRIBING),
                    worker_id(),
                    time.time(),
                    time.time(),
                    job_id,
                    str(JobState.RECEIVED),
                ),
            )
            if cursor.rowcount != 1:
                return None
            self._event(
                "state", job_id, str(JobState.RECEIVED), str(JobState.TRANSCRIBING), "claimed"
            )
        return self.get(job_id)

    def release_stale_claims(self, timeout_s: float) -> list[str]:
        """Give back jobs whose worker died (same host, pid gone) or went silent too long."""
        released = []
        with self.transaction():
            rows = self.db.execute(
                "SELECT id, claimed_by, claimed_at FROM jobs WHERE state = ?",
                (str(JobState.TRANSCRIBING),),
            ).fetchall()
            for job_id, claimed_by, claimed_at in rows:
                if not claim_is_stale(claimed_by, claimed_at, timeout_s):
                    continue
                self.db.execute(
                    "UPDATE jobs SET state = ?, claimed_by = NULL, claimed_at = NULL, "
                    "updated_at = ? WHERE id = ?",
                    (str(JobState.RECEIVED), time.time(), job_id),
                )
                self._event(
                    "state",
                    job_id,
                    str(JobState.TRANSCRIBING),
                    str(JobState.RECEIVED),
                    f"stale claim of {claimed_by} released",
                )
                released.append(job_id)
        return released

    def lock_for_review(self, job_id: str, reviewer: str, *, timeout_s: float) -> Job:
        """Lock a job to one reviewer; a lock older than ``timeout_s`` may be taken over."""
        with self.transaction():
            job = self.get(job_id)
            held = job.review_lock and job.review_lock != reviewer
            fresh = job.review_lock_at is not None and time.time() - job.review_lock_at < timeout_s
            if held and fresh:
                raise StateError(
                    f"job {job_id} is being reviewed by {job.review_lock}",
                    hint=f"the lock expires {timeout_s / 60:.0f} min after their last action",
                )
            self.db.execute(
                "UPDATE jobs SET review_lock = ?, review_lock_at = ? WHERE id = ?",
                (reviewer, time.time(), job_id),
            )
            if not job.review_lock or held:
                self._event("review-lock", job_id, detail=reviewer)
        return self.get(job_id)

    def unlock_review(self, job_id: str, reviewer: str) -> None:
        """Release our own lock (on exit); someone else's lock is left alone."""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE jobs SET review_lock = NULL, review_lock_at = NULL "
                "WHERE id = ? AND review_lock = ?",
                (job_id, reviewer),
            )
            if cursor.rowcount:
                self._event("review-unlock", job_id, detail=reviewer)

    def events(self, job_id: str | None = None) -> list[sqlite3.Row]:
        sql = "SELECT * FROM events"
        params: tuple[Any, ...] = ()
        if job_id:
            sql += " WHERE job_id = ?"
            params = (job_id,)
        return self.db.execute(sql + " ORDER BY seq", params).fetchall()

    def checkpoint(self) -> None:
        """Fold the WAL into the database and empty it (old row versions included)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Values as stored: the warnings list as JSON text."""
    if "warnings" in values:
        values = {**values, "warnings": json.dumps(list(values["warnings"] or []))}
    return values


def store_fault(path: Path, exc: sqlite3.Error, doing: str) -> StoreError:
    """SQLite's error in one line; on a full disk it may only say "disk I/O error",
    so the free space is looked at too. SQLite has rolled back: nothing changed."""
    try:
        full = "full" in str(exc) or shutil.disk_usage(path.parent).free < 1 << 16
    except OSError:
        full = False
    detail = f"{exc}" + (" (the disk is full)" if full and "full" not in str(exc) else "")
    return StoreError(
        f"job store {path} cannot be {doing}: {detail}",
        hint=("free disk space there; " if full else "") + "nothing was changed",
    )


def claim_is_stale(claimed_by: str | None, claimed_at: float | None, timeout_s: float) -> bool:
    """A claim is stale when its process is gone (same host) or it outlived the timeout."""
    host = socket.gethostname()
    if not claimed_by or claimed_at is None:
        return True
    if time.time() - claimed_at > timeout_s:
        return True
    claim_host, _, pid = claimed_by.rpartition(":")
    if claim_host != host or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    return not process_alive(int(pid))  # a zombie counts as gone: it will never finish
