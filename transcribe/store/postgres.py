"""The job store on a PostgreSQL server (15 or later), shared by several machines.

Same tables and rules as the SQLite store (the operations are written once, in
:mod:`transcribe.store.sql`); what PostgreSQL needs besides:

- Writers on several machines. A row about to change is read ``FOR UPDATE``; a
  claim picks its job ``FOR UPDATE SKIP LOCKED``, so two workers never take the
  same one and neither waits for the other.
- One audit chain with concurrent writers: each entry locks the one-row
  ``audit_head`` table (``SELECT ... FOR UPDATE``) in the transaction of the change
  it records, takes the next sequence number and the previous hash from it, and
  moves it on. Sequence numbers are never taken from a database sequence, whose
  values commit out of order.
- An autocommit connection with explicit transactions; a serialisation failure or a
  deadlock is retried a few times, then reported in one line.
- Explicit migrations (``transcribe db migrate``), recorded in ``schema_migrations``:
  machines of several versions share the server, so none upgrades it by surprise.
  Migration 2 is Procrastinate's own schema (the work queue of platform mode, in the
  same database so that a task commits with the state change that calls for it); a
  later Procrastinate upgrade becomes a migration that applies the files its release
  ships in ``procrastinate/sql/migrations``, never a re-run of its whole schema.

Credentials never come from the configuration: libpq reads ``PGPASSWORD``,
``PGPASSFILE`` or ``PGSERVICE``. Messages name the database, host and user, never a
password.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from .. import __version__
from ..errors import StoreConflict, StoreError
from .auditchain import GENESIS, entry_hash
from .contract import Transaction
from .sql import SqlJobStore

T = TypeVar("T")

#: attempts at a transaction that PostgreSQL rolled back to serialise it
RETRIES = 5
#: key of the transaction-scoped advisory lock that serialises migrations
MIGRATION_LOCK = 0x7472_6E73
CONNECT_HINT = (
    "check [store] url and that the server runs and lets this user in;"
    " a password comes from PGPASSWORD, PGPASSFILE or PGSERVICE"
)

#: A migration is SQL statements separated by ``;``, or a function that applies what
#: cannot be split that way (function bodies) and returns what to record besides us.
Migration: TypeAlias = str | Callable[[Transaction], str]


def procrastinate_schema(tx: Transaction) -> str:
    """Procrastinate's tables and functions, as its release ships them (one script,
    sent whole: its function bodies hold semicolons)."""
    import procrastinate
    from procrastinate.schema import SchemaManager

    tx.connection.execute(SchemaManager.get_schema())
    return f"procrastinate {procrastinate.__version__}"


MIGRATIONS: tuple[Migration, ...] = (
    # 1: the schema of SQLite's migrations 1-4 at once: jobs (with review locks and
    # warnings), the chained audit log and its head, the archive index, the blind index
    f"""
    CREATE TABLE jobs (
        id             TEXT COLLATE "C" PRIMARY KEY,
        client         TEXT NOT NULL,
        state          TEXT NOT NULL,
        source_name    TEXT NOT NULL,
        content_hash   TEXT,
        duplicate_of   TEXT REFERENCES jobs(id),
        inbox_path     TEXT,
        audio_path     TEXT,
        size_bytes     BIGINT,
        duration_s     DOUBLE PRECISION,
        language       TEXT,
        priority       TEXT NOT NULL DEFAULT 'normal',
        author         TEXT,
        document_type  TEXT,
        reason         TEXT,
        attempts       INTEGER NOT NULL DEFAULT 0,
        claimed_by     TEXT,
        claimed_at     DOUBLE PRECISION,
        created_at     DOUBLE PRECISION NOT NULL,
        updated_at     DOUBLE PRECISION NOT NULL,
        review_lock    TEXT,
        review_lock_at DOUBLE PRECISION,
        warnings       TEXT
    );
    CREATE UNIQUE INDEX jobs_content_hash ON jobs(content_hash)
        WHERE content_hash IS NOT NULL AND state NOT IN ('duplicate', 'quarantined');
    CREATE INDEX jobs_state ON jobs(state, priority, created_at);
    CREATE TABLE events (
        seq        BIGINT PRIMARY KEY,
        at         DOUBLE PRECISION NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        job_id     TEXT,
        from_state TEXT,
        to_state   TEXT,
        detail     TEXT,
        prev_hash  TEXT,
        hash       TEXT
    );
    CREATE INDEX events_job ON events(job_id, seq);
    CREATE TABLE audit_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  BIGINT NOT NULL,
        hash TEXT NOT NULL
    );
    INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS}');
    CREATE TABLE archive_items (
        job_id      TEXT NOT NULL REFERENCES jobs(id),
        kind        TEXT NOT NULL,
        path        TEXT NOT NULL UNIQUE,
        sha256      TEXT NOT NULL,
        size_bytes  BIGINT NOT NULL,
        age_sha256  TEXT NOT NULL,
        age_size    BIGINT NOT NULL,
        archived_at DOUBLE PRECISION NOT NULL,
        purged_at   DOUBLE PRECISION,
        PRIMARY KEY (job_id, kind)
    );
    CREATE TABLE blind_index (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        kind   TEXT NOT NULL,
        term   TEXT NOT NULL,
        PRIMARY KEY (job_id, kind, term)
    );
    CREATE INDEX blind_index_term ON blind_index(kind, term)
    """,
    # 2: the work queue of platform mode (Procrastinate's schema)
    procrastinate_schema,
    # 3: SQLite's migration 5: accounts of the HTTPS service and their logins
    """
    CREATE TABLE accounts (
        name          TEXT COLLATE "C" PRIMARY KEY,
        role          TEXT NOT NULL,
        clients       TEXT NOT NULL DEFAULT '[]',
        author        TEXT,
        password_hash TEXT NOT NULL,
        disabled      INTEGER NOT NULL DEFAULT 0,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until  DOUBLE PRECISION,
        created_at    DOUBLE PRECISION NOT NULL,
        updated_at    DOUBLE PRECISION NOT NULL,
        last_login_at DOUBLE PRECISION
    );
    CREATE TABLE sessions (
        token_hash TEXT COLLATE "C" PRIMARY KEY,
        account    TEXT NOT NULL REFERENCES accounts(name),
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at    DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX sessions_account ON sessions(account)
    """,
)


def describe_url(url: str) -> str:
    """``database D on HOST:PORT as USER``, from the URL and libpq's defaults: enough
    to find the server, never the password (which is not in the URL anyway)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "a PostgreSQL server (unreadable [store] url)"
    host = params.get("host") or "the local socket"
    port = f":{params['port']}" if params.get("port") else ""
    user = f" as {params['user']}" if params.get("user") else ""
    return f"PostgreSQL database {params.get('dbname') or '(default)'} on {host}{port}{user}"


def first_line(exc: BaseException) -> str:
    """psycopg's messages run over several lines (DETAIL, HINT): the first says it."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection, with a timeout and our name in ``pg_stat_activity``."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"[store] url is not a PostgreSQL address: {first_line(exc)}") from None
    defaults = {"connect_timeout": "10", "application_name": "transcribe"}
    extra = {key: value for key, value in defaults.items() if key not in given}
    try:
        return psycopg.connect(url, autocommit=True, **extra)
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to the job store ({describe_url(url)}): {first_line(exc)}",
            hint=CONNECT_HINT,
        ) from None


class PostgresStore(SqlJobStore):
    """The job store in a PostgreSQL database; its schema is made by :meth:`migrate`."""

    backend = "postgresql"
    lock_rows = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, actor: str = "system", migrate: bool = False) -> None:
        super().__init__(actor=actor)
        self.url = url
        self._where = describe_url(url)
        self._depth = 0
        self.conn = connect(url)
        try:
            self.schema_before = self._migrate() if migrate else self._check_schema()
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def describe(self) -> str:
        return self._where

    # -- schema -------------------------------------------------------------------

    def schema_version(self) -> int:
        row = self._one("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not row[0]:
            return 0
        return int(self._one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0])

    def _check_schema(self) -> int:
        """Opening never migrates: say what to run, or refuse a newer schema."""
        version = self.schema_version()
        self._refuse_newer(version)
        if version < len(MIGRATIONS):
            state = "has no schema yet" if version == 0 else f"has schema {version}"
            raise StoreError(
                f"the job store ({self._where}) {state}; this program needs"
                f" schema {len(MIGRATIONS)}",
                hint="run `transcribe db migrate`",
            )
        return version

    def _refuse_newer(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the job store ({self._where}) was written by a newer version (schema {version})",
                hint="upgrade this program",
            )

    def _migrate(self) -> int:
        """Apply what is missing, each version recorded; returns the version found.
        An advisory lock, held until commit, lets one machine migrate at a time."""

        def body(tx: Transaction) -> int:
            tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                " program TEXT NOT NULL)"
            )
            version = self.schema_version()
            self._refuse_newer(version)
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                program = f"transcribe {__version__}"
                if callable(migration):
                    program += f" ({migration(tx)})"
                else:
                    for statement in filter(str.strip, migration.split(";")):
                        tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (version, program) VALUES (?, ?)",
                    (number, program),
                )
            return version

        return self.atomic(body)

    def migrations(self) -> list[tuple[int, float, str]]:
        """What ``schema_migrations`` recorded: version, when (epoch seconds), by what."""
        if not self.schema_version():
            return []
        rows = self._all(
            "SELECT version, EXTRACT(EPOCH FROM applied_at)::float8, program"
            " FROM schema_migrations ORDER BY version"
        )
        return [(int(v), float(at), str(program)) for v, at, program in rows]

    # -- transactions ---------------------------------------------------------------

    def execute_in_transaction(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        """``?`` marks become psycopg's ``%s``. Outside a transaction (a plain read),
        a lost connection is reported here; inside, :meth:`atomic` reports it."""
        query = sql.replace("%", "%%").replace("?", "%s")
        try:
            return self.conn.execute(query, tuple(params))
        except psycopg.OperationalError as exc:
            if self._depth:
                raise
            raise self._fault(exc) from None

    def atomic(self, body: Callable[[Transaction], T]) -> T:
        if self._depth:  # called from inside another body or a hook: join it
            return body(Transaction(self, self.conn))
        for attempt in range(1, RETRIES + 1):
            try:
                return self._once(body)
            except pg_errors.TransactionRollback as exc:  # serialisation, deadlock
                if attempt == RETRIES:
                    raise StoreError(
                        f"job store is busy: {first_line(exc)} ({RETRIES} attempts)",
                        hint="try again; nothing was changed",
                    ) from None
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    def _once(self, body: Callable[[Transaction], T]) -> T:
        self._depth += 1
        try:
            with self.conn.transaction():
                return body(Transaction(self, self.conn))
        except pg_errors.UniqueViolation as exc:
            raise StoreConflict(f"job store refused a duplicate: {first_line(exc)}") from None
        except pg_errors.TransactionRollback:
            raise
        except psycopg.OperationalError as exc:
            raise self._fault(exc) from None
        finally:
            self._depth -= 1

    def _fault(self, exc: psycopg.Error) -> StoreError:
        return StoreError(
            f"job store ({self._where}) failed: {first_line(exc)}",
            hint="nothing was changed; " + CONNECT_HINT,
        )

    # -- audit chain ----------------------------------------------------------------

    def _event(
        self,
        action: str,
        job_id: str | None,
        from_state: str | None = None,
        to_state: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Lock the chain head, link the entry to it, move it on: all in the caller's
        transaction, so concurrent writers queue here and chain in commit order."""
        seq, prev_hash = self._one("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
        entry = (seq + 1, time.time(), self.actor, action, job_id, from_state, to_state, detail)
        digest = entry_hash(entry, prev_hash)
        self.execute_in_transaction(
            "INSERT INTO events (seq, at, actor, action, job_id, from_state, to_state,"
            " detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*entry, prev_hash, digest),
        )
        self.execute_in_transaction(
            "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq + 1, digest)
        )

    def audit_issued(self) -> int | None:
        row = self._one("SELECT seq FROM audit_head WHERE id = 1")
        return None if row is None else int(row[0])

    # -- maintenance ----------------------------------------------------------------

    def checkpoint(self) -> None:
        """Nothing to fold: the server makes every commit durable in its own WAL.
        Old row versions stay until (auto)vacuum reuses their space."""

    def integrity_ok(self) -> bool:
        """The server checks its own pages; here: reachable, and the chain head there."""
        return self.audit_issued() is not None
