"""The job store's contract: every read and write of job state, the audit trail, the
review locks, the archive index and the blind index, whatever holds the rows.

Two backends keep it: SQLite (:mod:`transcribe.store.sqlite`, one file, the embedded
default) and PostgreSQL (:mod:`transcribe.store.postgres`, several machines). Callers
hold a :class:`JobStore` from :func:`transcribe.store.open_store` and never see a
connection, so a stage runs unchanged on either, and the tests run each rule on both.

What every backend guarantees:

- every state change and its audit event commit together, or neither does;
- a job moves only along :data:`~transcribe.store.model.ALLOWED`, checked against
  the state read under the same lock that writes the new one;
- one claim per job, even with workers on several machines;
- audit entries form one hash chain, in the order their sequence numbers say.

- results commit only with the attempt they were computed for (fencing): every run
  of a stage counts an attempt (:meth:`JobStore.claim`, :meth:`JobStore.begin_attempt`)
  and commits with ``expect_attempts``, so a run whose job was handed to a newer one
  (its worker was taken for dead) gets :class:`~transcribe.errors.StaleAttempt` and
  writes nothing.

A task queue in the same database (platform mode) commits a task with the state
change that calls for it: :meth:`JobStore.transition` and :meth:`JobStore.insert_job`
take an ``in_transaction`` callback, and :meth:`JobStore.on_change` registers one for
every audited state change, and for the update that ends an intake (``inbox_path``
cleared: the job becomes workable without changing state). Both run inside the open
transaction, with the :class:`Transaction` (and so the backend's connection) in hand.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import JobNotFound, StoreError
from .model import Account, ArchiveEntry, Job, JobState, Session, new_job_id

ID_DRAWS = 20

T = TypeVar("T")


class Transaction:
    """An open transaction, as a body run by :meth:`JobStore.atomic` or a hook sees it.

    ``connection`` is the backend's own (``sqlite3.Connection`` or
    ``psycopg.Connection``), for code that needs the driver, such as a task queue's
    deferral; :meth:`execute` takes SQL with ``?`` marks on both backends.
    """

    def __init__(self, store: JobStore, connection: Any) -> None:
        self.store = store
        self.connection = connection

    @property
    def backend(self) -> str:
        return self.store.backend

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement in this transaction; returns the driver's cursor."""
        return self.store.execute_in_transaction(sql, params)


#: Called inside the transaction of a state change, with the job as it will commit.
ChangeHook = Callable[[Transaction, Job], None]


class JobStore(ABC):
    """All reads and writes of job state. One instance per process and thread."""

    #: ``sqlite`` or ``postgresql``
    backend: str
    #: who acts, as the audit trail shows it
    actor: str
    #: the schema version found when the store was opened (before any migration)
    schema_before: int

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str:
        """Where the rows are, for messages and ``doctor`` (never a password)."""

    @abstractmethod
    def schema_version(self) -> int: ...

    # -- transactions and hooks -----------------------------------------------------

    @abstractmethod
    def atomic(self, body: Callable[[Transaction], T]) -> T:
        """Run ``body`` in one transaction and commit; an error rolls everything back.

        A backend may run ``body`` again after a serialisation failure, so it must do
        nothing but database work. Called inside another ``atomic``, it joins it.
        """

    @abstractmethod
    def execute_in_transaction(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement with ``?`` marks, on this store's connection."""

    @abstractmethod
    def on_change(self, hook: ChangeHook) -> None:
        """Call ``hook`` inside the transaction of every audited state change, and of
        the :meth:`update` that ends an intake (clears ``inbox_path``)."""

    # -- jobs -----------------------------------------------------------------------

    @abstractmethod
    def insert_job(self, *, in_transaction: ChangeHook | None = None, **values: Any) -> Job:
        """Create a job and its ``created`` event in one transaction; a second live
        job with the same content hash is refused (:class:`StoreConflict`)."""

    @abstractmethod
    def get(self, job_id: str) -> Job: ...

    def unused_job_id(self) -> str:
        """A new job id that no job has yet.

        Ids stay short enough to read out on the phone (the date and 24 random bits),
        so a busy secretariat draws one twice: about 3 % of days with 1,000 dictations.
        Drawing again here keeps intake from stopping on the store's refusal; two
        machines drawing the same unused id at the same instant still meet that
        refusal, and the file waits in the inbox for the next look.
        """
        for _ in range(ID_DRAWS):
            job_id = new_job_id()
            try:
                self.get(job_id)
            except JobNotFound:
                return job_id
        raise StoreError(f"no unused job id in {ID_DRAWS} draws: is the store answering?")

    @abstractmethod
    def find_by_hash(self, content_hash: str) -> Job | None:
        """The one live job holding this content, if any (duplicates and quarantine
        excluded)."""

    @abstractmethod
    def jobs(self, *states: JobState, client: str | None = None) -> list[Job]:
        """Jobs in queue order: urgent first, then oldest."""

    @abstractmethod
    def update(self, job_id: str, **values: Any) -> None:
        """Change bookkeeping columns (not the state) of one job. Clearing
        ``inbox_path`` ends its intake: the change hooks run, as for a state change."""

    @abstractmethod
    def transition(
        self,
        job_id: str,
        to_state: JobState,
        *,
        expect: JobState | tuple[JobState, ...] | None = None,
        reason: str | None = None,
        in_transaction: ChangeHook | None = None,
        expect_attempts: int | None = None,
        **values: Any,
    ) -> Job:
        """Move a job to a new state, checked against ALLOWED, audited, atomically.

        With ``expect_attempts`` (the fencing token of the run that commits), only
        while the job's attempt count is still that: else
        :class:`~transcribe.errors.StaleAttempt`, checked first and under the row lock,
        so ``in_transaction`` (which may write the run's result files) never runs for
        a stale run."""

    @abstractmethod
    def claim_next(self, *, states: tuple[JobState, ...] = (JobState.RECEIVED,)) -> Job | None:
        """Atomically take the next job to transcribe: urgent first, then oldest."""

    @abstractmethod
    def claim(self, job_id: str) -> Job | None:
        """Take one given job if it is still waiting (another worker may have taken it)."""

    @abstractmethod
    def begin_attempt(
        self,
        job_id: str,
        attempt: int,
        *,
        states: tuple[JobState, ...],
        take_over: bool = False,
        to_state: JobState | None = None,
    ) -> Job | None:
        """Start a run of a queued task, deferred when the job had ``attempt`` attempts.

        The job must be in ``states``, its intake finished, and still at ``attempt``;
        with ``take_over`` (the task runs again because its worker was taken for dead)
        also at a later attempt, which the dead run counted. The count goes up by one,
        and the new count is this run's fencing token (``expect_attempts``); the job
        moves to ``to_state`` when given (a claim for transcription). None: the task
        is obsolete (another run has the job, or it moved on), nothing was changed.
        """

    @abstractmethod
    def release_stale_claims(self, timeout_s: float) -> list[str]:
        """Give back jobs whose worker died (same host, pid gone) or went silent too long."""

    # -- review locks ---------------------------------------------------------------

    @abstractmethod
    def lock_for_review(self, job_id: str, reviewer: str, *, timeout_s: float) -> Job:
        """Lock a job to one reviewer; a lock older than ``timeout_s`` may be taken over."""

    @abstractmethod
    def renew_review(self, job_id: str, reviewer: str, *, timeout_s: float) -> bool:
        """Renew our own live lock, atomically; False when it expired or is someone
        else's now. Unlike :meth:`lock_for_review` it never takes a lock over: a lease
        the service lost stays lost (the fencing of remote saves)."""

    @abstractmethod
    def unlock_review(self, job_id: str, reviewer: str) -> None:
        """Release our own lock (on exit); someone else's lock is left alone."""

    # -- audit trail ----------------------------------------------------------------

    @abstractmethod
    def record(self, action: str, job_id: str | None = None, detail: str | None = None) -> None:
        """Audit an action that changes no state: view, export, decryption, purge, key
        rotation. ``detail`` must never hold personal data (no names, no text)."""

    @abstractmethod
    def iter_events(self, job_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Audit entries in sequence order, as dicts of
        :data:`~transcribe.store.model.EVENT_COLUMNS`, read in pages (the log is long)."""

    def events(self, job_id: str | None = None) -> list[dict[str, Any]]:
        return list(self.iter_events(job_id))

    @abstractmethod
    def audit_issued(self) -> int | None:
        """The highest sequence number ever handed out, so a cut-off tail shows."""

    @abstractmethod
    def audited_states(self) -> list[tuple[str, str, str | None]]:
        """Every job's id, state, and the state its audit trail ends in."""

    # -- archive index and blind index ----------------------------------------------

    @abstractmethod
    def index_archive(
        self,
        job_id: str,
        entries: Iterable[ArchiveEntry],
        terms: Iterable[tuple[str, str]],
        *,
        expect: JobState = JobState.RENDERED,
        expect_attempts: int | None = None,
    ) -> None:
        """Replace a job's archive index rows and blind terms, in one transaction, only
        while the job is still in ``expect`` (and, when given, at ``expect_attempts``),
        read under the write lock."""

    @abstractmethod
    def archive_entries(
        self, *, job_id: str | None = None, include_purged: bool = True
    ) -> list[ArchiveEntry]:
        """Indexed items, oldest first."""

    @abstractmethod
    def set_archive_cipher(self, job_id: str, kind: str, sha256: str, size: int) -> None:
        """After re-encryption (key rotation): what the item's age file now hashes to."""

    @abstractmethod
    def purge_archive_item(
        self, job_id: str, kind: str, *, at: float, detail: str, forget_names: bool
    ) -> None:
        """Mark an item purged (and, for the letter, drop the job's blind terms), with
        its ``purge`` audit entry, in one transaction."""

    @abstractmethod
    def find_by_terms(self, kind: str, terms: set[str]) -> set[str]:
        """Jobs whose blind index holds every one of ``terms`` for ``kind``."""

    # -- accounts and logins of the HTTPS service -------------------------------------
    #
    # The rules (hashing, lockout, token lifetimes, who sees what) live in
    # transcribe/service/; the store keeps the rows and audits every change with them.

    @abstractmethod
    def add_account(self, account: Account) -> None:
        """Create an account with its ``account-add`` audit entry; a taken name is
        refused (:class:`~transcribe.errors.StoreConflict`)."""

    @abstractmethod
    def account(self, name: str) -> Account | None: ...

    @abstractmethod
    def accounts(self) -> list[Account]:
        """Every account, by name."""

    @abstractmethod
    def change_account(
        self,
        name: str,
        action: str,
        *,
        detail: str | None = None,
        end_sessions: bool = False,
        **values: Any,
    ) -> Account:
        """Change an account's columns with an ``action`` audit entry, in one
        transaction; ``end_sessions`` also ends all its logins (disabled, new
        password). :class:`~transcribe.errors.AccountNotFound` when there is none."""

    @abstractmethod
    def count_failed_login(self, name: str, *, limit: int, lock_s: float) -> Account:
        """One more failed login, counted under the row lock so that concurrent
        guesses all count; at ``limit`` the account is locked for ``lock_s`` seconds
        and the count starts again. Audited (``login-failed``, ``account-locked``)."""

    @abstractmethod
    def open_session(self, session: Session) -> None:
        """A successful login: the session row, the failure count cleared, the
        account's ``last_login_at``, and a ``login`` audit entry, together."""

    @abstractmethod
    def session(self, token_hash: str) -> Session | None: ...

    @abstractmethod
    def renew_session(self, token_hash: str, *, expires_at: float, used_at: float) -> None:
        """Move a live session's expiry on (a login stays open while it is used)."""

    @abstractmethod
    def drop_expired_sessions(self, now: float) -> int:
        """Forget sessions past their expiry; returns how many."""

    # -- maintenance ----------------------------------------------------------------

    @abstractmethod
    def checkpoint(self) -> None:
        """Make committed changes durable in the main store and drop old row versions
        where the backend can (SQLite folds and empties its WAL)."""

    @abstractmethod
    def integrity_ok(self) -> bool: ...
