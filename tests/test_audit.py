"""The tamper-evident audit log: the hash chain over the job store's ``events`` table."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import PROJECT, Backend, execute, query, use_store
from transcribe.store import JobState, JobStore, new_job_id
from transcribe.store import sqlite as store_module
from transcribe.store.audit import AuditError, export_audit, verify_audit
from transcribe.store.auditchain import GENESIS, entry_hash
from transcribe.store.sqlite import MIGRATIONS, SqliteStore

pytestmark = pytest.mark.both_backends
runner = CliRunner()
CHAIN_MIGRATION = next(i for i, script in enumerate(MIGRATIONS) if "prev_hash" in script)


def some_history(store: JobStore, jobs: int = 2) -> list[str]:
    """A few jobs moved through a few states, plus non-state actions: ~12 entries."""
    ids = []
    for _ in range(jobs):
        job = store.insert_job(id=new_job_id(), client="riverside-clinic", source_name="a.wav")
        store.transition(job.id, JobState.TRANSCRIBING)
        store.transition(job.id, JobState.REVIEW)
        store.record("view", job.id, "draft shown")
        store.transition(job.id, JobState.APPROVED)
        ids.append(job.id)
    store.record("archive-verify", None, "0 item(s) decrypted, 0 problem(s)")
    return ids


@pytest.fixture
def store(backend: Backend) -> Iterator[JobStore]:
    with backend.open(actor="secretary@desk") as opened:
        some_history(opened)
        yield opened


def test_every_entry_is_chained_from_the_genesis_value(store: JobStore) -> None:
    rows = store.events()
    assert len(rows) == 11
    assert rows[0]["prev_hash"] == GENESIS
    for before, row in itertools.pairwise(rows):
        assert row["prev_hash"] == before["hash"]
    report = verify_audit(store)
    assert report.ok and report.entries == 11 and report.head == rows[-1]["hash"]
    assert rows[-1]["hash"] == entry_hash(dict(rows[-1]), rows[-1]["prev_hash"])


def test_an_edited_entry_is_named(store: JobStore) -> None:
    execute(store, "UPDATE events SET actor = 'someone-else' WHERE seq = 4")
    report = verify_audit(store)
    assert report.first_bad == 4 and "entry #4 was altered" in str(report.problem)
    with pytest.raises(AuditError, match="#4"):
        report.raise_if_broken()


def test_an_edited_timestamp_or_state_is_named(store: JobStore) -> None:
    execute(store, "UPDATE events SET at = at + 1 WHERE seq = 7")
    assert verify_audit(store).first_bad == 7


def test_a_deleted_entry_is_named(store: JobStore) -> None:
    execute(store, "DELETE FROM events WHERE seq = 5")
    report = verify_audit(store)
    assert report.first_bad == 6
    assert report.problem == "audit entry #5 was deleted (entry #6 no longer follows #4)"


def test_two_swapped_entries_are_named(store: JobStore) -> None:
    """Swap the content of entries 3 and 4 (hashes included), keeping their numbers."""
    columns = "at, actor, action, job_id, from_state, to_state, detail, prev_hash, hash"
    (three,) = query(store, f"SELECT {columns} FROM events WHERE seq = 3")
    (four,) = query(store, f"SELECT {columns} FROM events WHERE seq = 4")
    assignments = ", ".join(f"{c.strip()} = ?" for c in columns.split(","))
    execute(store, f"UPDATE events SET {assignments} WHERE seq = 3", *four)
    execute(store, f"UPDATE events SET {assignments} WHERE seq = 4", *three)
    report = verify_audit(store)
    assert report.first_bad == 3 and "#3" in str(report.problem)


def test_renumbered_entries_are_named(store: JobStore) -> None:
    """Reorder by renumbering: entry 6 moved before entry 5."""
    execute(store, "UPDATE events SET seq = 100 WHERE seq = 5")
    execute(store, "UPDATE events SET seq = 5 WHERE seq = 6")
    execute(store, "UPDATE events SET seq = 6 WHERE seq = 100")
    assert verify_audit(store).first_bad == 5


def test_a_cut_off_tail_is_named(store: JobStore) -> None:
    execute(store, "DELETE FROM events WHERE seq >= 10")
    report = verify_audit(store)
    assert report.first_bad == 10 and "after #9 were deleted" in str(report.problem)


def test_a_forged_whole_entry_is_named(store: JobStore) -> None:
    """An inserted entry with a correct-looking hash still breaks the next link."""
    row = dict(store.events()[5])
    row.update(action="view", detail="forged")
    row["hash"] = entry_hash(row, row["prev_hash"])
    execute(
        store,
        "UPDATE events SET action = ?, detail = ?, hash = ? WHERE seq = 6",
        row["action"],
        row["detail"],
        row["hash"],
    )
    assert verify_audit(store).first_bad == 7


def test_a_job_state_changed_behind_the_logs_back_is_caught(store: JobStore) -> None:
    job_id = store.jobs()[0].id
    execute(store, "UPDATE jobs SET state = 'archived' WHERE id = ?", job_id)
    report = verify_audit(store)
    assert not report.ok and f"job {job_id} is archived but" in str(report.problem)


def test_sqlite_entries_written_before_the_chain_are_sealed_at_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:CHAIN_MIGRATION])
    old = sqlite3.connect(path, isolation_level=None)
    store_module.SqliteStore._migrate(_Bare(old, path))
    old.execute(
        "INSERT INTO events (at, actor, action, job_id) VALUES (1.5, 'system', 'created', 'j1')"
    )
    old.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    with SqliteStore(path) as store:
        store.record("view", "j1")
        rows = store.events()
        assert rows[0]["prev_hash"] == GENESIS and rows[1]["prev_hash"] == rows[0]["hash"]
        assert verify_audit(store).ok


class _Bare:
    """Just enough of a JobStore to run its migrations on an old-schema database."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db, self.path = db, path

    transaction = SqliteStore.transaction


def test_export_writes_json_lines_and_is_itself_audited(store: JobStore, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    assert export_audit(store, out) == 11
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["prev_hash"] == GENESIS and lines[-1]["hash"] == store.events()[10]["hash"]
    assert out.stat().st_mode & 0o777 == 0o600
    assert store.events()[-1]["action"] == "audit-export"
    assert verify_audit(store).ok


def test_audit_verify_on_the_command_line(tmp_path: Path, backend: Backend) -> None:
    home = tmp_path / "ws"
    assert runner.invoke(app, ["--home", str(home), "init", "--demo"]).exit_code == 0
    use_store(home, backend.url)
    with backend.open() if backend.url else SqliteStore(home / "jobs.db") as store:
        some_history(store)
    result = runner.invoke(app, ["--home", str(home), "audit", "verify"])
    assert result.exit_code == 0 and "audit log intact: 11 entries" in result.output
    with backend.open() if backend.url else SqliteStore(home / "jobs.db") as store:
        execute(store, "UPDATE events SET detail = 'nothing to see' WHERE seq = 3")
    result = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), "--home", str(home), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 12
    assert result.stderr.startswith("error: audit entry #3 was altered")
    assert len(result.stderr.strip().splitlines()) == 1
    result = runner.invoke(app, ["--home", str(home), "audit", "export", "-o", str(tmp_path / "a")])
    assert result.exit_code == 0 and "11 audit entries" in result.output


WRITER = """
import sys
from transcribe.store import JobState, new_job_id
from tests.conftest import open_spec

store = open_spec(sys.argv[1], actor="writer-" + sys.argv[2])
for index in range(int(sys.argv[3])):
    store.record("view", None, f"{sys.argv[2]}:{index}")
    if index % 5 == 0:
        job = store.insert_job(id=new_job_id(), client="c", source_name="x.wav")
        store.transition(job.id, JobState.TRANSCRIBING)
"""


def test_concurrent_writers_from_several_processes_make_one_chain(backend: Backend) -> None:
    """Each entry takes the chain head under a lock in its own transaction: entries of
    four processes interleave, yet the chain has no gap, no fork, and verifies."""
    writers, each = 4, 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, backend.spec, str(n), str(each)], cwd=PROJECT
        )
        for n in range(writers)
    ]
    assert all(p.wait(timeout=240) == 0 for p in procs)
    with backend.open() as store:
        rows = store.events()
        report = verify_audit(store)
    assert report.ok, report.problem
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))
    assert len(rows) == writers * (each + 2 * (each // 5))
    actors = [row["actor"] for row in rows]
    assert len(set(actors)) == writers
    for n in range(writers):  # and each writer's own entries kept its order
        mine = [row["detail"] for row in rows if row["action"] == "view"]
        mine = [d for d in mine if d.startswith(f"{n}:")]
        assert mine == [f"{n}:{index}" for index in range(each)]
