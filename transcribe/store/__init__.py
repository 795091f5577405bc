"""The job store: the single source of truth for job states, and their audit trail.

Callers open it with :func:`open_store` and hold a :class:`JobStore` (the contract in
:mod:`transcribe.store.contract`), never a backend class or a connection, so that the
rules every backend keeps (which state may follow which, one claim per job, each
state change and its audit event committed together) have one name, and the
backends (:mod:`~transcribe.store.sqlite`, the embedded default, and
:mod:`~transcribe.store.postgres`, for several machines) stay interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from .contract import ChangeHook, JobStore, Transaction
from .model import (
    ALLOWED,
    ArchiveEntry,
    Job,
    JobState,
    check_attempt,
    claim_is_stale,
    new_job_id,
    reviewer_name,
    worker_id,
)

__all__ = [
    "ALLOWED",
    "ArchiveEntry",
    "ChangeHook",
    "Job",
    "JobState",
    "JobStore",
    "MigrationResult",
    "Transaction",
    "check_attempt",
    "claim_is_stale",
    "migrate_store",
    "new_job_id",
    "open_store",
    "reviewer_name",
    "worker_id",
]


def open_store(config: Config, *, actor: str = "system", migrate: bool = False) -> JobStore:
    """The workspace's job store, as ``[store] url`` says; close it (or use ``with``).

    SQLite brings its file to the newest schema when opened, as it always has; a
    PostgreSQL server is migrated only when asked (``migrate``, ``transcribe db
    migrate``), since machines of several versions may share it. In platform mode the
    store defers each job's next stage in the transaction that calls for it
    (:mod:`transcribe.queue`), whoever opened it.
    """
    if config.store.backend == "postgresql":
        from ..queue import install
        from .postgres import PostgresStore

        store = PostgresStore(config.store.url, actor=actor, migrate=migrate)
        install(store, config)
        return store
    from .sqlite import SqliteStore

    return SqliteStore(config.store.path or config.paths.database, actor=actor)


@dataclass(frozen=True)
class MigrationResult:
    store: str  # where, as JobStore.describe() says it
    before: int
    after: int


def migrate_store(config: Config, *, actor: str = "system") -> MigrationResult:
    """Create or upgrade the job store's schema; harmless to run again."""
    with open_store(config, actor=actor, migrate=True) as store:
        return MigrationResult(store.describe(), store.schema_before, store.schema_version())
