"""The embedded job store: one SQLite file, the default for a single office.

Why SQLite and these settings: WAL lets the review loop read while the watcher
writes; ``synchronous=FULL`` makes every commit survive a power cut; ``BEGIN
IMMEDIATE`` takes the write lock before reading, so two workers can never claim the
same job. Every state change and its audit event are written in one transaction.
The store keeps no patient or matter names: those live in the job's work folder.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreConflict, StoreError
from .auditchain import chain_event, seal_unchained
from .contract import Transaction
from .sql import SqlJobStore

T = TypeVar("T")

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
    # 5: accounts of the HTTPS service (argon2id hashes, lockout after failed logins)
    # and their logins (only a SHA-256 of each bearer token, with its expiry)
    """
    CREATE TABLE accounts (
        name          TEXT PRIMARY KEY,
        role          TEXT NOT NULL,
        clients       TEXT NOT NULL DEFAULT '[]',
        author        TEXT,
        password_hash TEXT NOT NULL,
        disabled      INTEGER NOT NULL DEFAULT 0,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until  REAL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        last_login_at REAL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        account    TEXT NOT NULL REFERENCES accounts(name),
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at    REAL NOT NULL
    );
    CREATE INDEX sessions_account ON sessions(account)
    """,
)


def _use_wal(db: sqlite3.Connection, timeout_s: float = 30.0) -> None:
    """Switch a new ``jobs.db`` to write-ahead logging, waiting for the file.

    The switch needs the file to itself. Two connections that both read the new file
    and both ask for it are a deadlock SQLite breaks by answering one of them "database
    is locked" at once, without its busy handler: processes opening a new workspace
    together (``watch`` and ``batch``; the audit test's four writers, once in CI's
    fresh clone) failed. Once the file is in WAL mode, the pragma only reads it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SqliteStore(SqlJobStore):
    """The job store in one SQLite file (``jobs.db``), migrated when opened."""

    backend = "sqlite"

    def __init__(self, path: Path, *, actor: str = "system") -> None:
        super().__init__(actor=actor)
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open job store {path}: {exc}") from None
        self.db.row_factory = sqlite3.Row
        try:
            _use_wal(self.db)
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA secure_delete=ON")  # overwritten values are zeroed
            self.db.execute("PRAGMA foreign_keys=ON")
            self.schema_before = self._migrate()
        except sqlite3.OperationalError as exc:  # e.g. no room for the WAL index
            self.db.close()
            raise store_fault(path, exc, "opened") from exc
        except BaseException:
            self.db.close()
            raise
        path.chmod(0o600)

    def close(self) -> None:
        self.db.close()

    def describe(self) -> str:
        return f"SQLite {self.path}"

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> int:
        """Bring the file to the newest schema; returns the version found."""
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
        return int(version)

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
            if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
                raise StoreConflict(f"job store refused a duplicate: {exc}") from exc
            raise

    def atomic(self, body: Callable[[Transaction], T]) -> T:
        if self.db.in_transaction:  # called from inside another body or a hook: join it
            return body(Transaction(self, self.db))
        with self.transaction():
            return body(Transaction(self, self.db))

    def execute_in_transaction(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, tuple(params))

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
        assert cursor.lastrowid is not None
        chain_event(self.db, cursor.lastrowid)

    def audit_issued(self) -> int | None:
        """SQLite remembers the highest AUTOINCREMENT value it handed out."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return None if row is None else int(row[0])

    def checkpoint(self) -> None:
        """Fold the WAL into the database and empty it (old row versions included)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


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
