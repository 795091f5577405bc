"""The job store's rules written once, in the SQL both backends speak.

Each operation of the contract is a transaction body run by the backend's
:meth:`~transcribe.store.contract.JobStore.atomic`, so the two backends cannot drift
apart in what they check, write or audit. What differs is left to the backend: how a
transaction starts (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's row locks), how an
audit entry is chained, and two clauses: :attr:`SqlJobStore.lock_rows`, which locks
a row read to be changed (on SQLite the write lock is already held), and
:attr:`SqlJobStore.skip_locked`, which lets concurrent workers pass over rows another
one is taking.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..errors import AccountNotFound, JobNotFound, StateError
from .contract import ChangeHook, JobStore, Transaction
from .model import (
    ACCOUNT_COLUMNS,
    ALLOWED,
    ARCHIVE_COLUMNS,
    EVENT_COLUMNS,
    JOB_COLUMNS,
    SESSION_COLUMNS,
    Account,
    ArchiveEntry,
    Job,
    JobState,
    Session,
    check_attempt,
    claim_is_stale,
    job_values,
    reviewer_name,
    worker_id,
)

JOB_SELECT = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"
ACCOUNT_SELECT = f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM accounts"
SESSION_SELECT = f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions"
QUEUE_ORDER = " ORDER BY priority = 'urgent' DESC, created_at, id"
#: audit entries read per query by :meth:`SqlJobStore.iter_events`
EVENT_PAGE = 5000


class SqlJobStore(JobStore):
    """The contract's operations over a DB-API connection, statements with ``?`` marks."""

    lock_rows = ""
    skip_locked = ""

    def __init__(self, *, actor: str) -> None:
        self.actor = actor
        self._hooks: list[ChangeHook] = []

    @abstractmethod
    def _event(
        self,
        action: str,
        job_id: str | None,
        from_state: str | None = None,
        to_state: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Append one chained audit entry, inside the current transaction."""

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute_in_transaction(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute_in_transaction(sql, params).fetchall())

    def on_change(self, hook: ChangeHook) -> None:
        self._hooks.append(hook)

    def _changed(self, tx: Transaction, job_id: str, hook: ChangeHook | None = None) -> None:
        """Run the change hooks on the job as this transaction leaves it."""
        hooks = [*self._hooks, *([hook] if hook else [])]
        if hooks:
            job = self.get(job_id)
            for run in hooks:
                run(tx, job)

    def _set_job(self, job_id: str, values: dict[str, Any]) -> int:
        unknown = set(values) - set(JOB_COLUMNS)
        if unknown:
            raise ValueError(f"no job column {sorted(unknown)[0]!r}")
        assignments = ", ".join(f"{name} = ?" for name in values)
        cursor = self.execute_in_transaction(
            f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id)
        )
        return int(cursor.rowcount)

    # -- jobs -----------------------------------------------------------------------

    def record(self, action: str, job_id: str | None = None, detail: str | None = None) -> None:
        self.atomic(lambda _tx: self._event(action, job_id, detail=detail))

    def insert_job(self, *, in_transaction: ChangeHook | None = None, **values: Any) -> Job:
        now = time.time()
        values = job_values(values)
        values.setdefault("created_at", now)
        values["updated_at"] = now
        values["state"] = str(values.get("state", JobState.RECEIVED))
        unknown = set(values) - set(JOB_COLUMNS)
        if unknown:
            raise ValueError(f"no job column {sorted(unknown)[0]!r}")
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)

        def body(tx: Transaction) -> None:
            tx.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", tuple(values.values()))
            self._event("created", values["id"], None, values["state"], values.get("reason"))
            self._changed(tx, values["id"], in_transaction)

        self.atomic(body)
        return self.get(values["id"])

    def get(self, job_id: str) -> Job:
        return self._get(job_id)

    def _get(self, job_id: str, *, lock: bool = False) -> Job:
        row = self._one(JOB_SELECT + " WHERE id = ?" + (self.lock_rows if lock else ""), (job_id,))
        if row is None:
            raise JobNotFound(f"no job {job_id!r}", hint="see `transcribe status`")
        return Job.from_row(row)

    def find_by_hash(self, content_hash: str) -> Job | None:
        row = self._one(
            JOB_SELECT + " WHERE content_hash = ? AND state NOT IN ('duplicate', 'quarantined')",
            (content_hash,),
        )
        return Job.from_row(row) if row else None

    def jobs(self, *states: JobState, client: str | None = None) -> list[Job]:
        sql = JOB_SELECT + " WHERE 1=1"
        params: list[Any] = []
        if states:
            sql += f" AND state IN ({', '.join('?' for _ in states)})"
            params += [str(s) for s in states]
        if client:
            sql += " AND client = ?"
            params.append(client)
        return [Job.from_row(row) for row in self._all(sql + QUEUE_ORDER, params)]

    def update(self, job_id: str, **values: Any) -> None:
        if "state" in values:
            raise ValueError("use transition() to change a job's state")
        values = job_values(values)
        values["updated_at"] = time.time()

        def body(tx: Transaction) -> None:
            if self._set_job(job_id, values) != 1:
                raise JobNotFound(f"no job {job_id!r}")
            if "inbox_path" in values and values["inbox_path"] is None:
                self._changed(tx, job_id)  # intake over: the job is workable now

        self.atomic(body)

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
        expected = (expect,) if isinstance(expect, JobState) else expect

        def body(tx: Transaction) -> None:
            job = self._get(job_id, lock=True)
            check_attempt(job, expect_attempts)
            if expected and job.state not in expected:
                raise StateError(f"job {job_id} is {job.state}, not {'/'.join(expected)}")
            if to_state not in ALLOWED[job.state]:
                raise StateError(f"job {job_id} cannot go from {job.state} to {to_state}")
            changes = job_values(values)
            changes.update(state=str(to_state), reason=reason, updated_at=time.time())
            self._set_job(job_id, changes)
            self._event("state", job_id, str(job.state), str(to_state), reason)
            self._changed(tx, job_id, in_transaction)

        self.atomic(body)
        return self.get(job_id)

    # -- claims ---------------------------------------------------------------------

    def claim_next(self, *, states: tuple[JobState, ...] = (JobState.RECEIVED,)) -> Job | None:
        def body(tx: Transaction) -> str | None:
            row = self._one(
                f"SELECT id, state FROM jobs WHERE state IN ({', '.join('?' for _ in states)}) "
                "AND inbox_path IS NULL" + QUEUE_ORDER + " LIMIT 1" + self.skip_locked,
                [str(s) for s in states],
            )
            if row is None:
                return None
            job_id, state = row
            self._take(job_id)
            self._event("state", job_id, state, str(JobState.TRANSCRIBING), "claimed")
            self._changed(tx, job_id)
            return str(job_id)

        claimed = self.atomic(body)
        return None if claimed is None else self.get(claimed)

    def _take(self, job_id: str, *, only_from: JobState | None = None) -> int:
        now = time.time()
        sql = (
            "UPDATE jobs SET state = ?, claimed_by = ?, claimed_at = ?, "
            "attempts = attempts + 1, updated_at = ? WHERE id = ?"
        )
        params: list[Any] = [str(JobState.TRANSCRIBING), worker_id(), now, now, job_id]
        if only_from is not None:
            sql += " AND state = ? AND inbox_path IS NULL"
            params.append(str(only_from))
        return int(self.execute_in_transaction(sql, params).rowcount)

    def claim(self, job_id: str) -> Job | None:
        def body(tx: Transaction) -> bool:
            if self._take(job_id, only_from=JobState.RECEIVED) != 1:
                return False
            self._event(
                "state", job_id, str(JobState.RECEIVED), str(JobState.TRANSCRIBING), "claimed"
            )
            self._changed(tx, job_id)
            return True

        return self.get(job_id) if self.atomic(body) else None

    def begin_attempt(
        self,
        job_id: str,
        attempt: int,
        *,
        states: tuple[JobState, ...],
        take_over: bool = False,
        to_state: JobState | None = None,
    ) -> Job | None:
        def body(tx: Transaction) -> bool:
            job = self._get(job_id, lock=True)
            later = take_over and job.attempts > attempt
            if job.inbox_path is not None or job.state not in states:
                return False
            if job.attempts != attempt and not later:
                return False
            target = to_state or job.state
            if target != job.state and target not in ALLOWED[job.state]:
                raise StateError(f"job {job_id} cannot go from {job.state} to {target}")
            now = time.time()
            changes: dict[str, Any] = {"attempts": job.attempts + 1, "updated_at": now}
            if target == JobState.TRANSCRIBING:
                changes.update(claimed_by=worker_id(), claimed_at=now)
            changes["state"] = str(target)
            self._set_job(job_id, changes)
            detail = f"attempt {job.attempts + 1}" + (
                ", taken over from a run taken for dead" if later else ""
            )
            if target != job.state:
                self._event("state", job_id, str(job.state), str(target), "claimed, " + detail)
                self._changed(tx, job_id)
            else:  # no state change: the audit shows the attempt, the hooks see nothing
                self._event("attempt", job_id, str(job.state), None, detail)
            return True

        return self.get(job_id) if self.atomic(body) else None

    def release_stale_claims(self, timeout_s: float) -> list[str]:
        def body(tx: Transaction) -> list[str]:
            released = []
            rows = self._all(
                "SELECT id, claimed_by, claimed_at FROM jobs WHERE state = ? ORDER BY id"
                + self.skip_locked,
                (str(JobState.TRANSCRIBING),),
            )
            for job_id, claimed_by, claimed_at in rows:
                if not claim_is_stale(claimed_by, claimed_at, timeout_s):
                    continue
                self._set_job(
                    job_id,
                    {
                        "state": str(JobState.RECEIVED),
                        "claimed_by": None,
                        "claimed_at": None,
                        "updated_at": time.time(),
                    },
                )
                detail = f"stale claim of {claimed_by} released"
                self._event(
                    "state", job_id, str(JobState.TRANSCRIBING), str(JobState.RECEIVED), detail
                )
                self._changed(tx, job_id)
                released.append(job_id)
            return released

        return self.atomic(body)

    # -- review locks ---------------------------------------------------------------

    def lock_for_review(self, job_id: str, reviewer: str, *, timeout_s: float) -> Job:
        def body(_tx: Transaction) -> None:
            job = self._get(job_id, lock=True)
            held = job.review_lock and job.review_lock != reviewer
            fresh = job.review_lock_at is not None and time.time() - job.review_lock_at < timeout_s
            if held and fresh:
                raise StateError(
                    f"job {job_id} is being reviewed by {reviewer_name(job.review_lock)}",
                    hint=f"the lock expires {timeout_s / 60:.0f} min after their last action",
                )
            self._set_job(job_id, {"review_lock": reviewer, "review_lock_at": time.time()})
            if not job.review_lock or held:
                self._event("review-lock", job_id, detail=reviewer)

        self.atomic(body)
        return self.get(job_id)

    def renew_review(self, job_id: str, reviewer: str, *, timeout_s: float) -> bool:
        def body(_tx: Transaction) -> bool:
            now = time.time()
            cursor = self.execute_in_transaction(
                "UPDATE jobs SET review_lock_at = ? "
                "WHERE id = ? AND review_lock = ? AND review_lock_at > ?",
                (now, job_id, reviewer, now - timeout_s),
            )
            return bool(cursor.rowcount)

        return self.atomic(body)

    def unlock_review(self, job_id: str, reviewer: str) -> None:
        def body(_tx: Transaction) -> None:
            cursor = self.execute_in_transaction(
                "UPDATE jobs SET review_lock = NULL, review_lock_at = NULL "
                "WHERE id = ? AND review_lock = ?",
                (job_id, reviewer),
            )
            if cursor.rowcount:
                self._event("review-unlock", job_id, detail=reviewer)

        self.atomic(body)

    # -- audit trail ----------------------------------------------------------------

    def iter_events(self, job_id: str | None = None) -> Iterator[dict[str, Any]]:
        after: int | None = None
        while True:
            sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE 1=1"
            params: list[Any] = []
            if job_id:
                sql += " AND job_id = ?"
                params.append(job_id)
            if after is not None:
                sql += " AND seq > ?"
                params.append(after)
            rows = self._all(sql + f" ORDER BY seq LIMIT {EVENT_PAGE}", params)
            for row in rows:
                yield dict(zip(EVENT_COLUMNS, row, strict=True))
            if len(rows) < EVENT_PAGE:
                return
            after = rows[-1][0]

    def audited_states(self) -> list[tuple[str, str, str | None]]:
        rows = self._all(
            "SELECT j.id, j.state, ("
            "  SELECT e.to_state FROM events e WHERE e.job_id = j.id AND e.to_state IS NOT NULL"
            "  ORDER BY e.seq DESC LIMIT 1) AS audited FROM jobs j ORDER BY j.id"
        )
        return [(job_id, state, audited) for job_id, state, audited in rows]

    # -- archive index and blind index ----------------------------------------------

    def index_archive(
        self,
        job_id: str,
        entries: Iterable[ArchiveEntry],
        terms: Iterable[tuple[str, str]],
        *,
        expect: JobState = JobState.RENDERED,
        expect_attempts: int | None = None,
    ) -> None:
        rows = [tuple(getattr(e, c) for c in ARCHIVE_COLUMNS) for e in entries]
        terms = sorted(terms)

        def body(tx: Transaction) -> None:
            job = self._get(job_id, lock=True)  # re-read under the write lock
            check_attempt(job, expect_attempts)
            if job.state != expect:
                raise StateError(f"job {job_id} changed state while being archived")
            tx.execute("DELETE FROM archive_items WHERE job_id = ?", (job_id,))
            marks = ", ".join("?" for _ in ARCHIVE_COLUMNS)
            for row in rows:
                tx.execute(
                    f"INSERT INTO archive_items ({', '.join(ARCHIVE_COLUMNS)}) VALUES ({marks})",
                    row,
                )
            tx.execute("DELETE FROM blind_index WHERE job_id = ?", (job_id,))
            for kind, term in terms:
                tx.execute(
                    "INSERT INTO blind_index (job_id, kind, term) VALUES (?, ?, ?)",
                    (job_id, kind, term),
                )

        self.atomic(body)

    def archive_entries(
        self, *, job_id: str | None = None, include_purged: bool = True
    ) -> list[ArchiveEntry]:
        sql = f"SELECT {', '.join(ARCHIVE_COLUMNS)} FROM archive_items WHERE 1=1"
        params: list[Any] = []
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)
        if not include_purged:
            sql += " AND purged_at IS NULL"
        rows = self._all(sql + " ORDER BY archived_at, job_id, kind", params)
        return [ArchiveEntry.from_row(row) for row in rows]

    def set_archive_cipher(self, job_id: str, kind: str, sha256: str, size: int) -> None:
        self.atomic(
            lambda tx: tx.execute(
                "UPDATE archive_items SET age_sha256 = ?, age_size = ?"
                " WHERE job_id = ? AND kind = ?",
                (sha256, size, job_id, kind),
            )
        )

    def purge_archive_item(
        self, job_id: str, kind: str, *, at: float, detail: str, forget_names: bool
    ) -> None:
        def body(tx: Transaction) -> None:
            tx.execute(
                "UPDATE archive_items SET purged_at = ? WHERE job_id = ? AND kind = ?",
                (at, job_id, kind),
            )
            if forget_names:
                tx.execute("DELETE FROM blind_index WHERE job_id = ?", (job_id,))
            self._event("purge", job_id, detail=detail)

        self.atomic(body)

    def find_by_terms(self, kind: str, terms: set[str]) -> set[str]:
        if not terms:
            return set()
        marks = ", ".join("?" for _ in terms)
        rows = self._all(
            f"SELECT job_id FROM blind_index WHERE kind = ? AND term IN ({marks})"
            " GROUP BY job_id HAVING COUNT(DISTINCT term) = ?",
            (kind, *sorted(terms), len(terms)),
        )
        return {row[0] for row in rows}

    # -- accounts and logins of the HTTPS service -------------------------------------

    def add_account(self, account: Account) -> None:
        values = account.row()
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)

        def body(tx: Transaction) -> None:
            tx.execute(f"INSERT INTO accounts ({columns}) VALUES ({marks})", tuple(values.values()))
            clients = ",".join(account.clients) or "-"
            self._event("account-add", None, detail=f"{account.name} {account.role} {clients}")

        self.atomic(body)

    def account(self, name: str) -> Account | None:
        row = self._one(ACCOUNT_SELECT + " WHERE name = ?", (name,))
        return Account.from_row(row) if row else None

    def accounts(self) -> list[Account]:
        return [Account.from_row(row) for row in self._all(ACCOUNT_SELECT + " ORDER BY name")]

    def _account(self, name: str) -> Account:
        """The account's row, locked for the change that follows."""
        row = self._one(ACCOUNT_SELECT + " WHERE name = ?" + self.lock_rows, (name,))
        if row is None:
            raise AccountNotFound(f"no account {name!r}", hint="see `transcribe users list`")
        return Account.from_row(row)

    def _set_account(self, name: str, values: dict[str, Any]) -> None:
        unknown = set(values) - set(ACCOUNT_COLUMNS)
        if unknown:
            raise ValueError(f"no account column {sorted(unknown)[0]!r}")
        stored = {
            key: json.dumps(list(value)) if key == "clients" else value
            for key, value in values.items()
        }
        if "disabled" in stored:
            stored["disabled"] = int(stored["disabled"])
        stored["updated_at"] = time.time()
        assignments = ", ".join(f"{key} = ?" for key in stored)
        self.execute_in_transaction(
            f"UPDATE accounts SET {assignments} WHERE name = ?", (*stored.values(), name)
        )

    def change_account(
        self,
        name: str,
        action: str,
        *,
        detail: str | None = None,
        end_sessions: bool = False,
        **values: Any,
    ) -> Account:
        def body(tx: Transaction) -> Account:
            self._account(name)
            if values:
                self._set_account(name, values)
            if end_sessions:
                tx.execute("DELETE FROM sessions WHERE account = ?", (name,))
            self._event(action, None, detail=f"account {name}" + (f": {detail}" if detail else ""))
            return self._account(name)

        return self.atomic(body)

    def count_failed_login(self, name: str, *, limit: int, lock_s: float) -> Account:
        def body(_tx: Transaction) -> Account:
            account = self._account(name)
            failures = account.failed_logins + 1
            self._event("login-failed", None, detail=f"account {name}, failure {failures}")
            if failures < limit:
                self._set_account(name, {"failed_logins": failures})
            else:
                until = time.time() + lock_s
                self._set_account(name, {"failed_logins": 0, "locked_until": until})
                self._event("account-locked", None, detail=f"account {name} for {lock_s:.0f} s")
            return self._account(name)

        return self.atomic(body)

    def open_session(self, session: Session) -> None:
        values = {column: getattr(session, column) for column in SESSION_COLUMNS}
        marks = ", ".join("?" for _ in values)

        def body(tx: Transaction) -> None:
            self._account(session.account)
            tx.execute(
                f"INSERT INTO sessions ({', '.join(values)}) VALUES ({marks})",
                tuple(values.values()),
            )
            self._set_account(
                session.account,
                {"failed_logins": 0, "locked_until": None, "last_login_at": session.created_at},
            )
            self._event("login", None, detail=f"account {session.account}")

        self.atomic(body)

    def session(self, token_hash: str) -> Session | None:
        row = self._one(SESSION_SELECT + " WHERE token_hash = ?", (token_hash,))
        return Session.from_row(row) if row else None

    def renew_session(self, token_hash: str, *, expires_at: float, used_at: float) -> None:
        self.atomic(
            lambda tx: tx.execute(
                "UPDATE sessions SET expires_at = ?, used_at = ? WHERE token_hash = ?",
                (expires_at, used_at, token_hash),
            )
        )

    def drop_expired_sessions(self, now: float) -> int:
        cursor = self.atomic(
            lambda tx: tx.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        )
        return int(cursor.rowcount)
