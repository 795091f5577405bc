"""The job store: the single source of truth for job states, and their audit trail.

Callers open it with :func:`open_store` and hold a :class:`JobStore` (the contract in
:mod:`transcribe.store.contract`), never a backend class or a connection, so that the
rules every backend keeps (which state may follow which, one claim per job, each
state change and its audit event committed together) have one name, and the
backends (:mod:`~transcribe.store.sqlite`, the embedded default, and others to come)
stay interchangeable.
"""

from __future__ import annotations

from ..config import Config
from .contract import ChangeHook, JobStore, Transaction
from .model import (
    ALLOWED,
    ArchiveEntry,
    Job,
    JobState,
    claim_is_stale,
    new_job_id,
    worker_id,
)

__all__ = [
    "ALLOWED",
    "ArchiveEntry",
    "ChangeHook",
    "Job",
    "JobState",
    "JobStore",
    "Transaction",
    "claim_is_stale",
    "new_job_id",
    "open_store",
    "worker_id",
]


def open_store(config: Config, *, actor: str = "system") -> JobStore:
    """The workspace's job store; close it (or use ``with``) when done."""
    from .sqlite import SqliteStore

    return SqliteStore(config.paths.database, actor=actor)
