"""The review loop over the network, server side, against the real server (uvicorn,
TLS, a free port) driven by httpx: leases, drafts, audio windows, approval, questions
to the author, the signed letter; who may do each, and what is audited.

SQLite only: the store's part (``renew_review``) runs on both backends in
``test_store.py``. Drafts are made by hand (no Whisper), as in the session tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from cli import app
from tests import audiogen
from tests.conftest import execute
from tests.test_review_session import RIVERSIDE_REQUIRED, TEXT, make_job, whisper_words
from tests.test_service import PASSWORD, Service, served_workspace
from transcribe.stages.letter import finish_approved
from transcribe.stages.transcription import job_dir
from transcribe.store import open_store

CLIENT = "riverside-clinic"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "sec": {"role": "secretary", "clients": [CLIENT]},
    "sec2": {"role": "secretary", "clients": [CLIENT]},
    "hart": {"role": "author", "clients": [CLIENT], "author": "Dr Hart"},
    "lee": {"role": "author", "clients": [CLIENT], "author": "Dr Lee"},
    "dubois-sec": {"role": "secretary", "clients": ["maitre-dubois"]},
    "root": {"role": "admin"},
}
#: (method, path under /jobs/ID, who may: "sec" the client's secretaries, "author" its
#: author, "both")
ENDPOINTS = [
    ("POST", "/lease", "sec"),
    ("DELETE", "/lease", "sec"),
    ("GET", "/draft", "sec"),
    ("PUT", "/draft", "sec"),
    ("GET", "/audio?start=0&end=1", "sec"),
    ("POST", "/approve", "sec"),
    ("POST", "/send-back", "sec"),
    ("GET", "/question", "both"),
    ("POST", "/answer", "author"),
    ("GET", "/letter", "both"),
]
runner = CliRunner()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("review-api")
    with served_workspace(folder, ACCOUNTS, failed_login_delay_s=0.01) as served:
        yield served


def call(
    service: Service,
    method: str,
    path: str,
    name: str | None,
    *,
    lease: str | None = None,
    json: dict[str, Any] | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {service.token(name)}"} if name else {}
    if lease:
        headers["X-Review-Lease"] = lease
    with service.client() as http:
        return http.request(method, path, headers=headers, json=json)


def review_job(service: Service, *, unreliable: bool = False, audio: bool = False) -> str:
    words = whisper_words()
    if unreliable:
        words[6]["unreliable"] = "loop"  # "seeing"
    job_id = make_job(service.config, words=words)
    if audio:
        clip = audiogen.silence_wav(job_dir(service.config, _job(service, job_id)) / "a.wav", 6.0)
        with open_store(service.config) as store:
            store.update(job_id, audio_path=str(clip.relative_to(service.home)))
    return job_id


def _job(service: Service, job_id: str) -> Any:
    with open_store(service.config) as store:
        return store.get(job_id)


def lease(service: Service, job_id: str, name: str = "sec") -> str:
    answer = call(service, "POST", f"/jobs/{job_id}/lease", name, json={})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["lease"])


@pytest.mark.parametrize(("method", "path", "who"), ENDPOINTS)
@pytest.mark.parametrize("name", ["sec", "hart", "lee", "dubois-sec", "root", None])
def test_who_may_touch_a_job_under_review(
    service: Service, method: str, path: str, who: str, name: str | None
) -> None:
    job_id = review_job(service)  # Dr Hart's, at riverside-clinic
    body = {} if method in ("POST", "PUT") else None
    answer = call(service, method, f"/jobs/{job_id}{path}", name, json=body)
    role = ACCOUNTS[name]["role"] if name else None
    if name is None:
        expected = {401}
    elif role == "admin" or (role, who) in (("secretary", "author"), ("author", "sec")):
        expected = {403}
    elif name in ("dubois-sec", "lee"):  # another client's secretary, another author
        expected = {404}
    else:  # allowed: refused later for what the request lacks, never for who sent it
        expected = {200, 400, 404, 409, 422}
    assert answer.status_code in expected, (answer.status_code, answer.text)
    assert set(answer.json()) == {"error"} or answer.status_code == 200
    if expected in ({403}, {404}):
        assert service.events(actor=f"api:{name}", action="denied", job_id=job_id)


def test_a_secretary_reviews_over_the_network_and_the_author_downloads_the_letter(
    service: Service, tmp_path: Path
) -> None:
    job_id = review_job(service, unreliable=True, audio=True)
    token = lease(service, job_id)
    draft = call(service, "GET", f"/jobs/{job_id}/draft", "sec").json()
    assert draft["text"] == TEXT and draft["revision"] == 0 and len(draft["unreliable"]) == 1
    assert "patient" in draft["template"]["required"]
    assert service.events(actor="api:sec", action="read-draft", job_id=job_id)

    start = TEXT.index("Patl")
    fixed = TEXT.replace("Patl", "Patel")
    save = {
        "revision": 0,
        "edits": [{"start": start, "end": start + 4, "replacement": "Patel", "kind": "word"}],
        "fields": RIVERSIDE_REQUIRED,
        "cursor": start,
        "text_sha256": hashlib.sha256(fixed.encode()).hexdigest(),
    }
    saved = call(service, "PUT", f"/jobs/{job_id}/draft", "sec", lease=token, json=save)
    assert saved.status_code == 200 and saved.json()["revision"] == 1, saved.text
    again = call(service, "PUT", f"/jobs/{job_id}/draft", "sec", lease=token, json=save)
    assert again.status_code == 409 and "changed since revision 0" in again.json()["error"]

    with service.client() as http:
        wav = http.get(
            f"/jobs/{job_id}/audio",
            params={"start": 1.0, "end": 3.5, "speed": 0.75},
            headers={"Authorization": f"Bearer {service.token('sec')}"},
        )
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    assert wav.content[:4] == b"RIFF" and len(wav.content) > 2.5 / 0.75 * 16000 * 2 * 0.9
    assert service.events(actor="api:sec", action="listen", job_id=job_id)

    approve = {"revision": 1}
    refused = call(service, "POST", f"/jobs/{job_id}/approve", "sec", lease=token, json=approve)
    assert refused.status_code == 409 and "unreliable" in refused.json()["error"]
    looked = {"revision": 1, "looked_at": [0]}
    assert (
        call(service, "PUT", f"/jobs/{job_id}/draft", "sec", lease=token, json=looked).json()[
            "revision"
        ]
        == 2
    )
    done = call(
        service, "POST", f"/jobs/{job_id}/approve", "sec", lease=token, json={"revision": 2}
    )
    assert done.status_code == 200 and done.json()["state"] == "approved", done.text
    with open_store(service.config, actor="watcher") as store:  # what the watcher does next
        assert finish_approved(service.config, store, job_id).state == "archived"

    letter = call(service, "GET", f"/jobs/{job_id}/letter", "hart")
    assert letter.status_code == 200 and letter.content.startswith(b"%PDF-")
    assert service.events(actor="api:hart", action="download", job_id=job_id)
    assert call(service, "GET", f"/jobs/{job_id}/letter", "lee").status_code == 404
    out = tmp_path / "letter.pdf"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "TRANSCRIBE_PASSWORD": PASSWORD}
    args = ["archive", "get", job_id, "-o", str(out), "--server", service.url, "--user", "hart"]
    result = runner.invoke(app, [*args, "--ca", str(service.ca)], env=env)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == letter.content and out.stat().st_mode & 0o777 == 0o600
    approved = (job_dir(service.config, _job(service, job_id)) / "approved.json").exists()
    assert not approved  # the archive took the plaintext away

    # an admin reads a letter only with a reason, audited before the letter is read
    def as_root(reason: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {service.token('root')}"}
        if reason is not None:
            headers["X-Access-Reason"] = quote(reason, safe="")
        with service.client() as http:
            return http.get(f"/jobs/{job_id}/letter", headers=headers)

    assert as_root(None).status_code == 403
    assert as_root("because").status_code == 400
    reason = "Réclamation n° 42 du Dr Hart : vérifier la signature"
    read = as_root(reason)
    assert read.status_code == 200 and read.content == letter.content
    [event] = service.events(actor="api:root", action="admin-access", job_id=job_id)
    assert event["detail"] == f"admin reason: {reason}"
    assert service.events(actor="api:root", action="download", job_id=job_id)
    assert reason not in service.log.read_text()  # a header: never in a log line
    out2 = tmp_path / "root.pdf"
    result = runner.invoke(
        app, [*args[:3], "-o", str(out2), "--server", service.url, "--user", "root",
              "--ca", str(service.ca), "--reason", reason],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0 and out2.read_bytes() == letter.content, result.output


def test_a_lost_lease_writes_nothing(service: Service) -> None:
    job_id = review_job(service)
    first = lease(service, job_id, "sec")
    taken = call(service, "POST", f"/jobs/{job_id}/lease", "sec2", json={})
    assert taken.status_code == 409 and "being reviewed by api:sec (" in taken.json()["error"]
    assert first not in taken.json()["error"]  # the lease token is never shown
    with open_store(service.config) as store:  # the secretary went quiet: the lease expires
        execute(store, "UPDATE jobs SET review_lock_at = ? WHERE id = ?", 1.0, job_id)
    second = lease(service, job_id, "sec2")
    edit = {"start": 0, "end": 4, "replacement": "Hello", "kind": "word"}
    late = call(
        service,
        "PUT",
        f"/jobs/{job_id}/draft",
        "sec",
        lease=first,
        json={"revision": 0, "edits": [edit]},
    )
    assert late.status_code == 409 and "lease" in late.json()["error"]
    renew = call(service, "POST", f"/jobs/{job_id}/lease", "sec", json={"lease": first})
    assert renew.status_code == 409
    assert call(service, "GET", f"/jobs/{job_id}/draft", "sec2").json()["text"] == TEXT
    wrong = call(service, "PUT", f"/jobs/{job_id}/draft", "sec2", lease=second, json={
        "revision": 0, "edits": [{**edit, "end": 10_000}]})  # fmt: skip
    assert wrong.status_code == 400 and "does not fit" in wrong.json()["error"]
    mismatch = {"revision": 0, "edits": [edit], "text_sha256": "0" * 64}
    assert (
        call(
            service, "PUT", f"/jobs/{job_id}/draft", "sec2", lease=second, json=mismatch
        ).status_code
        == 409
    )
    assert call(service, "GET", f"/jobs/{job_id}/draft", "sec2").json()["revision"] == 0
    corrections = job_dir(service.config, _job(service, job_id)) / "corrections.json"
    assert not corrections.exists()  # no refused save left an edit behind


def test_a_question_goes_to_the_author_and_the_answer_comes_back(service: Service) -> None:
    job_id = review_job(service)
    token = lease(service, job_id)
    asked = call(
        service, "POST", f"/jobs/{job_id}/send-back", "sec", lease=token,
        json={"question": "Which dose of bisoprolol?"},
    )  # fmt: skip
    assert asked.status_code == 200 and asked.json()["state"] == "query", asked.text
    question = call(service, "GET", f"/jobs/{job_id}/question", "hart").json()
    assert question["question"] == "Which dose of bisoprolol?" and question["answer"] is None
    assert service.events(actor="api:hart", action="read-question", job_id=job_id)
    answered = call(service, "POST", f"/jobs/{job_id}/answer", "hart", json={"answer": "5 mg"})
    assert answered.status_code == 200 and answered.json()["state"] == "review"
    assert call(service, "GET", f"/jobs/{job_id}/question", "sec").json()["answer"] == "5 mg"
    twice = call(service, "POST", f"/jobs/{job_id}/answer", "hart", json={"answer": "5 mg"})
    assert twice.status_code == 409


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "needs start and end"),
        ("?start=3&end=1", "0 <= start < end"),
        ("?start=0&end=90", "at most 60 s"),
        ("?start=0&end=1&speed=3", "speed: one of"),
        ("?start=nan&end=1", "0 <= start < end"),
    ],
)
def test_bad_audio_windows_get_400(service: Service, query: str, message: str) -> None:
    job_id = review_job(service, audio=True)
    answer = call(service, "GET", f"/jobs/{job_id}/audio{query}", "sec")
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_the_log_holds_no_draft_text_or_lease(service: Service) -> None:
    job_id = review_job(service)
    token = lease(service, job_id)
    call(service, "GET", f"/jobs/{job_id}/draft", "sec")
    log = service.log.read_text(encoding="utf-8")
    assert f"/jobs/{job_id}/draft" in log
    assert token not in log and "palpitations" not in log and "Patl" not in log
