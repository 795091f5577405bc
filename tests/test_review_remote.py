"""The review loop as a client of a real server (``review --server``), at the library's
level: edits saved in the background, the local journal, a lost lease, a changed
draft, a killed client, the audio window fetched here. The terminal itself, in client
mode, is in ``test_review_terminal.py``.

Each case builds its own client folder (token cache, journal) and its own job.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.test_review_session import RIVERSIDE_REQUIRED, TEXT
from tests.test_service import PASSWORD, Service, served_workspace
from tests.test_service_review import ACCOUNTS, call, lease, review_job
from transcribe.draft import load_draft
from transcribe.errors import StateError
from transcribe.review import ReviewSettings
from transcribe.review.remote import RemoteReviewSession, RemoteWorkplace, remote_workplace
from transcribe.service.client import ServiceClient
from transcribe.stages.transcription import draft_path, job_dir
from transcribe.store import JobState, open_store

SETTINGS = ReviewSettings(threshold=0.6)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("review-remote")
    with served_workspace(folder, ACCOUNTS, failed_login_delay_s=0.01) as served:
        yield served


def workplace(service: Service, folder: Path, name: str = "sec") -> RemoteWorkplace:
    client = ServiceClient(
        service.url, name, lambda: PASSWORD, ca=service.ca, folder=folder / "config"
    )
    return remote_workplace(client, SETTINGS, journal_folder=folder / "journal")


def server_draft(service: Service, job_id: str) -> dict:
    with open_store(service.config) as store:
        return load_draft(draft_path(service.config, store.get(job_id)))


def wait_until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def taken_over(service: Service, job_id: str) -> str:
    """The secretary's lease expires (the computer slept) and a colleague opens the job:
    the colleague's lease."""
    with open_store(service.config) as store:
        store.unlock_review(job_id, store.get(job_id).review_lock or "")
    return lease(service, job_id, "sec2")


def fix_patl(session: RemoteReviewSession) -> None:
    session.cursor = TEXT.index("Patl")
    session.edit_word("Patel")


def test_edits_are_saved_in_the_background_and_the_journal_goes_when_done(
    service: Service, tmp_path: Path
) -> None:
    job_id = review_job(service, audio=True)
    place = workplace(service, tmp_path)
    [entry] = [e for e in place.queue() if e.job.id == job_id]
    assert entry.doubtful == 3 and entry.job.author == "Dr Hart" and entry.locked_by is None
    session = place.open(job_id)
    assert [e.locked_by for e in place.queue() if e.job.id == job_id] == ["api:sec"]
    fix_patl(session)  # returns before the server has it: the saver sends it
    journal = session.journal.path
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.parent.stat().st_mode) == 0o700
    session.set_field("salutation", "Dear Dr Patel")
    session.flush()
    saved = server_draft(service, job_id)
    assert saved["text"] == TEXT.replace("Patl", "Patel") == session.text
    assert saved["fields"] == {"salutation": "Dear Dr Patel"} and saved["revision"] >= 1
    corrections = json.loads(
        (job_dir(service.config, session.job) / "corrections.json").read_text()
    )
    assert {"before": "Patl", "after": "Patel"}.items() <= corrections["edits"][0].items()
    assert session.sync_note() is None

    samples = session.clip(1.0, 2.5, 1.0)  # over the API, audited, played here
    assert samples is not None and abs(samples.size - 1.5 * 16000) < 800
    assert service.events(actor="api:sec", action="listen", job_id=job_id)

    session.close()
    assert not journal.exists() and not session.scratch.exists()
    with open_store(service.config) as store:
        assert store.get(job_id).review_lock is None


def test_a_lost_lease_keeps_the_edits_until_the_job_is_free_again(
    service: Service, tmp_path: Path
) -> None:
    job_id = review_job(service)
    session = workplace(service, tmp_path).open(job_id)
    other = taken_over(service, job_id)
    fix_patl(session)
    wait_until(lambda: session.sync_note() == "lease_lost")
    assert "sec2" in (session.saver.problem() or "")
    kept = json.loads(session.journal.path.read_text())
    assert [e["replacement"] for e in kept["edits"]] == ["Patel"]
    assert server_draft(service, job_id)["text"] == TEXT  # nothing written under sec2
    with pytest.raises(StateError, match="taken over"):
        session.flush(timeout_s=1)

    call(service, "DELETE", f"/jobs/{job_id}/lease", "sec2", lease=other)  # sec2 leaves
    wait_until(lambda: session.sync_note() is None)  # the saver took the lease back
    assert server_draft(service, job_id)["text"] == TEXT.replace("Patl", "Patel")
    session.close()


def test_a_draft_changed_meanwhile_is_a_conflict_never_a_merge(
    service: Service, tmp_path: Path
) -> None:
    job_id = review_job(service)
    session = workplace(service, tmp_path).open(job_id)
    other = taken_over(service, job_id)
    start = TEXT.index("palpitations")
    edit = {"start": start, "end": start + 13, "replacement": "tachycardia.", "kind": "word"}
    body = {"revision": 0, "edits": [edit]}
    assert call(service, "PUT", f"/jobs/{job_id}/draft", "sec2", lease=other, json=body).is_success
    call(service, "DELETE", f"/jobs/{job_id}/lease", "sec2", lease=other)

    fix_patl(session)
    wait_until(lambda: session.sync_note() == "conflict")
    kept_at = Path(session.saver.detail)
    assert kept_at.is_file() and "Patel" in kept_at.read_text()
    assert server_draft(service, job_id)["text"] == TEXT.replace("palpitations.", "tachycardia.")
    with pytest.raises(StateError, match="changed on the server"):
        session.approve()
    session.close()


def test_a_killed_client_finds_its_lease_and_edits_when_it_comes_back(
    service: Service, tmp_path: Path
) -> None:
    job_id = review_job(service)
    first = workplace(service, tmp_path).open(job_id)
    first.saver.stop()  # the client dies: nothing more reaches the server
    fix_patl(first)
    first.set_field("salutation", "Dear Dr Patel")
    assert server_draft(service, job_id)["text"] == TEXT

    again = workplace(service, tmp_path).open(job_id)  # same account, same computer
    assert again.notice == ("resumed", {}) and again.pending.lease == first.pending.lease
    assert again.text == TEXT.replace("Patl", "Patel")
    for name, value in RIVERSIDE_REQUIRED.items():
        again.set_field(name, value)
    job = again.approve()
    assert job.state == JobState.APPROVED and not again.journal.path.exists()
    approved = json.loads((job_dir(service.config, job) / "approved.json").read_text())
    assert approved["text"] == TEXT.replace("Patl", "Patel")
    assert approved["fields"]["salutation"] == "Dear Dr Patel"
    assert approved["reviewer"] == "api:sec"


def test_only_secretaries_have_a_review_queue(service: Service) -> None:
    for name, status in (("hart", 403), ("root", 403), (None, 401)):
        answer = service.get("/review", name)
        assert answer.status_code == status and set(answer.json()) == {"error"}
    assert service.events(actor="api:hart", action="denied")
    ids = {row["id"] for row in call(service, "GET", "/review", "dubois-sec").json()}
    assert not ids & {row["id"] for row in call(service, "GET", "/review", "sec").json()}
