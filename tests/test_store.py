"""The job store: settings, migrations, transitions, claims, audit events.

Every test taking ``store`` or ``backend`` runs on SQLite and on PostgreSQL; the
few about one backend's own machinery say so in their name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Backend, execute, query
from transcribe.errors import JobNotFound, StateError, StoreConflict, StoreError
from transcribe.store import Job, JobState, JobStore, Transaction, new_job_id
from transcribe.store.sqlite import MIGRATIONS, SqliteStore

pytestmark = pytest.mark.both_backends


@pytest.fixture
def store(backend: Backend) -> Iterator[JobStore]:
    with backend.open() as opened:
        yield opened


def add(store: JobStore, content_hash: str, **values: object) -> str:
    job_id = new_job_id()
    store.insert_job(
        id=job_id,
        client="c",
        source_name=f"{content_hash}.wav",
        content_hash=content_hash,
        **values,
    )
    return job_id


def test_sqlite_settings_are_durable_and_private(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "jobs.db") as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert (tmp_path / "jobs.db").stat().st_mode & 0o077 == 0


def test_sqlite_migrations_run_once_and_refuse_newer_schema(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "jobs.db").close()
    again = SqliteStore(tmp_path / "jobs.db")
    assert again.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert again.schema_before == again.schema_version() == len(MIGRATIONS)
    again.db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    again.close()
    with pytest.raises(StoreError, match="newer version"):
        SqliteStore(tmp_path / "jobs.db")


def test_content_hash_is_unique_among_live_jobs(store: JobStore) -> None:
    add(store, "h1")
    with pytest.raises(StoreConflict):
        add(store, "h1")
    add(store, "h1", state=JobState.DUPLICATE)  # duplicates and quarantine may repeat
    add(store, "h1", state=JobState.QUARANTINED)
    assert len(store.jobs()) == 3 and len(store.events()) == 3  # the refused one left nothing


def test_transitions_are_checked_and_audited(store: JobStore) -> None:
    job_id = add(store, "h")
    with pytest.raises(StateError, match="cannot go from received to archived"):
        store.transition(job_id, JobState.ARCHIVED)
    store.transition(job_id, JobState.TRANSCRIBING)
    with pytest.raises(StateError, match="not received"):
        store.transition(job_id, JobState.TRANSCRIBING, expect=JobState.RECEIVED)
    store.transition(job_id, JobState.FAILED, reason="disk full")
    assert store.get(job_id).reason == "disk full"
    actions = [(e["from_state"], e["to_state"]) for e in store.events(job_id)]
    assert actions == [(None, "received"), ("received", "transcribing"), ("transcribing", "failed")]


def test_times_and_sizes_come_back_exactly(store: JobStore) -> None:
    job_id = add(store, "h", duration_s=12.345678901234567, size_bytes=5 * 2**40)
    job = store.get(job_id)
    assert (job.duration_s, job.size_bytes) == (12.345678901234567, 5 * 2**40)
    assert isinstance(job.created_at, float) and job.as_dict()["created_at"].endswith("+00:00")


def test_unknown_job_is_a_clear_error(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        store.get("nope")
    with pytest.raises(JobNotFound):
        store.transition("nope", JobState.FAILED)


def test_claims_take_urgent_first_then_oldest(store: JobStore) -> None:
    first = add(store, "a")
    urgent = add(store, "b", priority="urgent")
    pending_move = add(store, "c", inbox_path="inbox/c/x.wav")  # intake not finished
    assert [store.claim_next().id, store.claim_next().id] == [urgent, first]
    assert store.claim_next() is None
    assert store.get(pending_move).state == JobState.RECEIVED
    assert store.claim(first) is None  # already taken
    job = store.get(urgent)
    assert job.attempts == 1 and job.claimed_by and job.state == JobState.TRANSCRIBING


CLAIMER = (
    "import sys; from tests.conftest import open_spec\n"
    "s = open_spec(sys.argv[1])\n"
    "while (j := s.claim_next()) is not None: print(j.id, flush=True)\n"
)


def test_two_processes_never_claim_the_same_job(backend: Backend) -> None:
    with backend.open() as store:
        for index in range(40):
            add(store, f"h{index}")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, backend.spec],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        for _ in range(3)
    ]
    claimed = [line for p in procs for line in p.communicate()[0].split()]
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_threads_with_own_connections_claim_each_job_once(backend: Backend) -> None:
    with backend.open() as store:
        for index in range(30):
            add(store, f"t{index}")
    claimed: list[str] = []

    def worker() -> None:
        with backend.open() as own:
            while (job := own.claim_next()) is not None:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 30 and len(set(claimed)) == 30


def test_stale_claims_of_dead_processes_are_released(store: JobStore) -> None:
    job_id = add(store, "h")
    store.claim_next()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    execute(
        store,
        "UPDATE jobs SET claimed_by = ? WHERE id = ?",
        f"{os.uname().nodename}:{dead.pid}",
        job_id,
    )
    assert store.release_stale_claims(timeout_s=3600) == [job_id]
    assert store.get(job_id).state == JobState.RECEIVED
    store.claim_next()  # our own live claim is not stale
    assert store.release_stale_claims(timeout_s=3600) == []
    assert store.integrity_ok()


def test_review_lock_is_exclusive_until_released_or_expired(store: JobStore) -> None:
    job_id = add(store, "h")
    store.lock_for_review(job_id, "anne", timeout_s=600)
    store.lock_for_review(job_id, "anne", timeout_s=600)  # refreshing one's own lock
    with pytest.raises(StateError, match="being reviewed by anne"):
        store.lock_for_review(job_id, "bruno", timeout_s=600)
    assert store.lock_for_review(job_id, "bruno", timeout_s=0).review_lock == "bruno"
    store.unlock_review(job_id, "anne")  # not anne's any more: no effect
    assert store.get(job_id).review_lock == "bruno"
    store.unlock_review(job_id, "bruno")
    assert store.get(job_id).review_lock is None
    actions = [(e["action"], e["detail"]) for e in store.events(job_id)][1:]
    assert actions == [
        ("review-lock", "anne"),
        ("review-lock", "bruno"),
        ("review-unlock", "bruno"),
    ]


def test_a_renewal_never_takes_a_review_lock_over(store: JobStore) -> None:
    job_id = add(store, "r")
    assert not store.renew_review(job_id, "anne#1", timeout_s=600)  # nobody's: not taken
    assert store.get(job_id).review_lock is None
    store.lock_for_review(job_id, "anne#1", timeout_s=600)
    assert store.renew_review(job_id, "anne#1", timeout_s=600)
    assert not store.renew_review(job_id, "anne#2", timeout_s=600)  # another lease of hers
    assert not store.renew_review(job_id, "anne#1", timeout_s=0)  # expired: lost
    with pytest.raises(StateError, match=r"being reviewed by anne \("):  # the lease unsaid
        store.lock_for_review(job_id, "bruno", timeout_s=600)
    store.lock_for_review(job_id, "bruno", timeout_s=0)
    assert not store.renew_review(job_id, "anne#1", timeout_s=600)
    assert store.get(job_id).review_lock == "bruno"


def test_warnings_are_stored_as_a_list_and_shown(store: JobStore) -> None:
    job_id = add(store, "h-warn")
    assert store.get(job_id).warnings == ()
    store.transition(job_id, JobState.TRANSCRIBING)
    warning = {"code": "language", "text": "dictated in English; the client's language is French"}
    job = store.transition(job_id, JobState.REVIEW, warnings=[warning])
    assert job.warnings == (warning,)
    assert job.as_dict()["warnings"] == [warning]
    store.update(job_id, warnings=[])
    assert store.get(job_id).as_dict()["warnings"] == []
    with pytest.raises(ValueError, match="transition"):
        store.update(job_id, state="approved")


def test_a_hook_commits_with_the_state_change_or_not_at_all(store: JobStore) -> None:
    """What a task queue in the same database needs: its deferral (here a row of a
    table of our own) written in the transaction of the state change, both or none."""
    execute(store, "CREATE TABLE deferred (job_id TEXT, state TEXT)")

    def defer(tx: Transaction, job: Job) -> None:
        assert tx.backend == store.backend and tx.connection is not None
        tx.execute("INSERT INTO deferred VALUES (?, ?)", (job.id, str(job.state)))

    def refuse(tx: Transaction, job: Job) -> None:
        tx.execute("INSERT INTO deferred VALUES (?, ?)", (job.id, "never"))
        raise RuntimeError("the queue is down")

    store.on_change(defer)
    job_id = add(store, "h")  # created: received
    store.claim_next()
    with pytest.raises(RuntimeError, match="queue is down"):
        store.transition(job_id, JobState.REVIEW, in_transaction=refuse)
    assert store.get(job_id).state == JobState.TRANSCRIBING  # rolled back, with its event
    assert [e["to_state"] for e in store.events(job_id)] == ["received", "transcribing"]
    store.transition(job_id, JobState.REVIEW)
    rows = [tuple(row) for row in query(store, "SELECT job_id, state FROM deferred")]
    assert rows == [(job_id, "received"), (job_id, "transcribing"), (job_id, "review")]


def test_a_body_joins_the_transaction_it_is_called_in(store: JobStore) -> None:
    job_id = add(store, "h")

    def body(tx: Transaction) -> None:
        store.record("view", job_id, "inside")  # joins: one commit for both
        store.transition(job_id, JobState.TRANSCRIBING)
        raise KeyError("roll it all back")

    with pytest.raises(KeyError):
        store.atomic(body)
    assert store.get(job_id).state == JobState.RECEIVED and len(store.events()) == 1
