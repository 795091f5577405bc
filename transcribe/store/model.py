"""What every job store backend shares: job states and their allowed moves, the job
row, the archive index row, and the identities of claiming workers.

Nothing here knows SQL or a driver, so the rules (which state may follow which, what
a stale claim is) are the same whichever backend holds the rows.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..errors import StaleAttempt
from ..fsutil import process_alive


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

#: The audit log's columns, in the order :meth:`JobStore.events` returns them.
EVENT_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "job_id",
    "from_state",
    "to_state",
    "detail",
    "prev_hash",
    "hash",
)

#: The archive index's columns (``archive_items``), in :class:`ArchiveEntry` order.
ARCHIVE_COLUMNS = (
    "job_id",
    "kind",
    "path",
    "sha256",
    "size_bytes",
    "age_sha256",
    "age_size",
    "archived_at",
    "purged_at",
)


@dataclass(frozen=True)
class Job:
    """A row of the jobs table, read-only: change it through the job store."""

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
    def from_row(cls, row: Sequence[Any]) -> Job:
        """From the values of :data:`JOB_COLUMNS`, in order, as any driver returns them."""
        values = dict(zip(JOB_COLUMNS, row, strict=True))
        values["state"] = JobState(values["state"])
        values["warnings"] = tuple(json.loads(values["warnings"] or "[]"))
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in JOB_COLUMNS}
        data["state"] = str(self.state)
        data["warnings"] = [dict(w) for w in self.warnings]
        data["source"] = self.source_name
        return _iso_stamps(data, ("created_at", "updated_at", "claimed_at", "review_lock_at"))


@dataclass(frozen=True)
class ArchiveEntry:
    """One row of the archive index: an encrypted item, what its plaintext and its age
    file must hash to, and when it was archived or purged. Never a name."""

    job_id: str
    kind: str
    path: str  # relative to the archive folder
    sha256: str
    size_bytes: int
    age_sha256: str
    age_size: int
    archived_at: float
    purged_at: float | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ArchiveEntry:
        return cls(*row)


def job_values(values: dict[str, Any]) -> dict[str, Any]:
    """Values as stored: the warnings list as JSON text."""
    if "warnings" in values:
        values = {**values, "warnings": json.dumps(list(values["warnings"] or []))}
    return values


def worker_id() -> str:
    """Identifies a claiming process, so a stale claim of a dead process can be freed."""
    return f"{socket.gethostname()}:{os.getpid()}"


#: a review lock held through the service is ``NAME#LEASE``: the lease tells two
#: clients of one account apart (a laptop and a desktop), and is never shown
LEASE_MARK = "#"


def reviewer_name(lock: str) -> str:
    """Who holds a review lock, as people are told (without a lease's token)."""
    return lock.partition(LEASE_MARK)[0]


def new_job_id(now: float | None = None) -> str:
    """Sortable and readable on the phone: ``20261123-a1b2c3``."""
    stamp = datetime.fromtimestamp(now or time.time(), UTC).strftime("%Y%m%d")
    return f"{stamp}-{secrets.token_hex(3)}"


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


def check_attempt(job: Job, expected: int | None) -> None:
    """The fence: a run commits only while its attempt is still the job's latest
    (``expected`` None: a run outside the queue, not fenced)."""
    if expected is not None and job.attempts != expected:
        raise StaleAttempt(
            f"job {job.id} is at attempt {job.attempts}, not {expected}: a newer run"
            " has it, so this run's result is dropped"
        )


# -- accounts of the HTTPS service ----------------------------------------------------

#: What an account may do (transcribe/service/rights.py says what each one sees).
ROLES = ("secretary", "author", "admin")

ACCOUNT_COLUMNS = (
    "name",
    "role",
    "clients",
    "author",
    "password_hash",
    "disabled",
    "failed_logins",
    "locked_until",
    "created_at",
    "updated_at",
    "last_login_at",
)

SESSION_COLUMNS = ("token_hash", "account", "created_at", "expires_at", "used_at")


@dataclass(frozen=True)
class Account:
    """A person who reaches the service: a row of ``accounts``, read-only.

    ``author`` is the author's name as the sidecars write it (``jobs.author``), so an
    author account sees the dictations recorded under that name. Only an argon2id hash
    of the password is kept, never the password.
    """

    name: str
    role: str
    clients: tuple[str, ...]
    author: str | None
    password_hash: str
    disabled: bool
    failed_logins: int
    locked_until: float | None
    created_at: float
    updated_at: float
    last_login_at: float | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Account:
        values = dict(zip(ACCOUNT_COLUMNS, row, strict=True))
        values["clients"] = tuple(json.loads(values["clients"] or "[]"))
        values["disabled"] = bool(values["disabled"])
        return cls(**values)

    def row(self) -> dict[str, Any]:
        """The values as stored: the client list as JSON text, the flag as 0/1."""
        values = {name: getattr(self, name) for name in ACCOUNT_COLUMNS}
        values["clients"] = json.dumps(list(self.clients))
        values["disabled"] = int(self.disabled)
        return values

    def as_dict(self) -> dict[str, Any]:
        """For ``users list --json``: everything but the hash."""
        data = {name: getattr(self, name) for name in ACCOUNT_COLUMNS if name != "password_hash"}
        data["clients"] = list(self.clients)
        return _iso_stamps(data, ("locked_until", "created_at", "updated_at", "last_login_at"))


@dataclass(frozen=True)
class Session:
    """A login: the SHA-256 of its bearer token (never the token), its account, and
    until when it holds; each use moves ``expires_at`` on, up to a maximum life."""

    token_hash: str
    account: str
    created_at: float
    expires_at: float
    used_at: float

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Session:
        return cls(*row)


def _iso_stamps(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``data`` with the Unix times under ``names`` written as ISO 8601 UTC (JSON readers
    and people read dates, not seconds since 1970); missing times stay None."""
    for name in names:
        if data[name] is not None:
            data[name] = datetime.fromtimestamp(data[name], UTC).isoformat()
    return data
