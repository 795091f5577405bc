"""Dictations in over the API, against the real server (uvicorn, TLS, a free port).

An upload goes through the very intake a dropped file does, so the hostile files of
``test_intake.py`` and ``test_hostile.py`` are sent here too and must come back
quarantined with their reason while the server keeps answering. SQLite only: the
store's contract is run on both backends by ``test_service.py`` and ``test_intake.py``.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import PROJECT
from tests.test_hostile import silence, wav_bytes
from tests.test_service import PASSWORD, Service, served_workspace
from transcribe.store import JobState, open_store

CLIENT = "riverside-clinic"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "sec": {"role": "secretary", "clients": [CLIENT]},
    "hart": {"role": "author", "clients": [CLIENT], "author": "Dr Hart"},
    "lee": {"role": "author", "clients": [CLIENT], "author": "Dr Lee"},
    "dubois-sec": {"role": "secretary", "clients": ["maitre-dubois"]},
    "root": {"role": "admin"},
}
PATIENT = "Jeanne Dupont"  # stands for the patient names that must never reach the log
CAP = 1024 * 1024  # max_file_mb = 1 in this workspace
#: (name, content, sidecar as sent, a part of the reason): the intake tests' hostile files
HOSTILE = [
    ("random.wav", os.urandom(4000), None, "cannot read audio"),
    ("notes.wav", b"This is a text file, not audio.\n" * 20, None, "cannot read audio"),
    ("empty.wav", b"", None, "empty file"),
    ("letter.docx", b"PK\x03\x04 not a dictation", None, "unsupported file type"),
    ("playlist.mp3", b"#EXTM3U\n#EXTINF:10,\n/etc/passwd\n#EXT-X-ENDLIST\n", None, "cannot read"),
    ("concat.mp3", b"ffconcat version 1.0\nfile '/etc/passwd'\n", None, "cannot read audio"),
    ("rate-1hz.wav", wav_bytes(1, 1), None, "rate 1 Hz"),
    ("0ch.wav", wav_bytes(16000, 0), None, "channel count 0"),
    ("broken.wav", silence(40), "{not json", "not valid JSON"),
    ("surrogate.wav", silence(42), '{"author": "\\ud800"}', "not valid Unicode text"),
    ("nested.wav", silence(43), '{"priority": ' + "[" * 500 + "]" * 500 + "}", "priority must"),
]
runner = CliRunner()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("upload")
    with served_workspace(folder, ACCOUNTS, max_file_mb=1, failed_login_delay_s=0.01) as served:
        yield served


def upload(
    service: Service,
    name: str | None,
    content: Any,
    *,
    file_name: str = "dictation.wav",
    sidecar: str | None = None,
    client: str | None = CLIENT,
    content_type: str = "audio/wav",
) -> httpx.Response:
    headers = {"Content-Type": content_type, "X-Dictation-Name": file_name}
    if name is not None:
        headers["Authorization"] = f"Bearer {service.token(name)}"
    if sidecar is not None:
        headers["X-Dictation-Sidecar"] = sidecar
    if client is not None:
        headers["X-Dictation-Client"] = client
    with service.client() as http:
        return http.post("/dictations", content=content, headers=headers)


def leftovers(service: Service) -> list[Path]:
    """What is in the folder uploads land in: nothing once each request is answered."""
    return list((service.config.paths.work / "uploads").rglob("*"))


def test_an_authors_upload_is_their_job_and_sending_it_again_is_safe(service: Service) -> None:
    sidecar = json.dumps({"patient": PATIENT, "priority": "urgent"})
    first = upload(service, "hart", silence(1), file_name="Dupont.wav", sidecar=sidecar)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["outcome"] == "accepted" and body["state"] == "received"
    with open_store(service.config) as store:
        job = store.get(body["id"])
    assert (job.client, job.author, job.priority) == (CLIENT, "Dr Hart", "urgent")
    assert job.source_name == "Dupont.wav" and job.inbox_path is None
    kept = json.loads((service.config.paths.work / "jobs" / job.id / "sidecar.json").read_text())
    assert kept["patient"] == PATIENT
    assert service.get(f"/jobs/{job.id}", "hart").json()["state"] == "received"
    assert job.id in {row["id"] for row in service.get("/jobs", "hart").json()}
    assert job.id not in {row["id"] for row in service.get("/jobs", "lee").json()}
    again = upload(service, "hart", silence(1), file_name="Dupont-again.wav")
    assert again.status_code == 200 and again.json()["id"] == job.id
    assert again.json()["outcome"] == "already-received"
    assert service.events(actor="api:hart", action="upload", job_id=job.id)
    assert service.events(actor="api:hart", action="created", job_id=job.id)
    assert not leftovers(service)


def test_hostile_files_are_quarantined_with_their_reason(service: Service) -> None:
    for file_name, content, sidecar, reason in HOSTILE:
        answer = upload(service, "sec", content, file_name=file_name, sidecar=sidecar)
        assert answer.status_code == 201, (file_name, answer.text)
        assert answer.json()["state"] == "quarantined", file_name
        assert reason in answer.json()["reason"] and "\n" not in answer.json()["reason"]
    mine = upload(service, "hart", os.urandom(3000), file_name="hart-noise.wav").json()
    assert mine["state"] == "quarantined"  # an author sees their refused dictation and why
    seen = service.get(f"/jobs/{mine['id']}", "hart").json()
    assert seen["state"] == "quarantined" and "cannot read audio" in seen["reason"]
    assert mine["id"] in {row["id"] for row in service.get("/jobs", "hart").json()}
    with open_store(service.config) as store:
        assert len(store.jobs(JobState.QUARANTINED)) == len(HOSTILE) + 1
    assert upload(service, "sec", silence(2)).json()["state"] == "received"  # still serving
    assert not leftovers(service)


def test_an_oversized_declared_body_is_refused_unread(service: Service) -> None:
    head = (
        "POST /api/v1/dictations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {service.token('sec')}\r\nContent-Type: audio/wav\r\n"
        f"X-Dictation-Name: big.wav\r\nX-Dictation-Client: {CLIENT}\r\n"
        "Content-Length: 5000000000\r\n\r\n"
    )
    status, body = raw_request(service, head.encode() + b"RIFF" * 1024)
    assert status == 413 and json.loads(body) == {"error": "file over the 1 MB cap"}
    assert not leftovers(service)
    assert service.events(actor="api:sec", action="upload-refused")


def test_a_chunked_body_growing_past_the_cap_is_refused_and_removed(service: Service) -> None:
    def chunks() -> Iterator[bytes]:
        yield silence(3)
        for _ in range(CAP // 65536 + 1):
            yield b"\x00" * 65536

    answer = upload(service, "sec", chunks())
    assert answer.status_code == 413 and "over the 1 MB cap" in answer.json()["error"]
    assert not leftovers(service)
    assert service.get("/jobs", "sec").status_code == 200


@pytest.mark.parametrize(
    ("name", "kwargs", "status", "message"),
    [
        (None, {}, 401, "no login token"),
        ("root", {}, 403, "sends no dictation"),
        ("dubois-sec", {}, 404, "no such client"),
        ("dubois-sec", {"client": "no-such-client"}, 404, "no such client"),
        ("sec", {"client": None}, 200, ""),  # one client: it is the one
        ("hart", {"sidecar": '{"author": "Dr Lee"}'}, 403, "only their own"),
        ("sec", {"file_name": "../../etc/x.wav"}, 400, "a plain name"),
        ("sec", {"file_name": "a%2Fb.wav"}, 400, "a plain name"),
        ("sec", {"file_name": ".hidden.wav"}, 400, "a plain name"),
        ("sec", {"file_name": "a%1bb.wav"}, 400, "a plain name"),
        ("sec", {"file_name": "%ff.wav"}, 400, "percent-encoded UTF-8"),
        ("sec", {"content_type": "text/plain"}, 400, "expected audio"),
        ("sec", {"content_type": "multipart/form-data"}, 400, "expected audio"),
    ],
)
def test_refusals_are_one_line(
    service: Service, name: str | None, kwargs: dict[str, Any], status: int, message: str
) -> None:
    answer = upload(service, name, silence(4), **kwargs)
    if status == 200:
        assert answer.status_code in (200, 201) and answer.json()["client"] == CLIENT
        return
    assert answer.status_code == status and message in answer.json()["error"]
    assert "\n" not in answer.json()["error"]
    if name is not None:
        assert service.events(
            actor=f"api:{name}", action="upload-refused" if name != "root" else "denied"
        )
    assert not leftovers(service)


def test_submit_sends_a_file_and_its_sidecar(service: Service, tmp_path: Path) -> None:
    audio = tmp_path / "Lee-Durand.wav"
    audio.write_bytes(silence(5))
    (tmp_path / "Lee-Durand.wav.json").write_text(json.dumps({"patient": PATIENT}))
    env = {k: v for k, v in os.environ.items() if k != "TRANSCRIBE_PASSWORD"}
    env |= {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TRANSCRIBE_PASSWORD": PASSWORD}
    args = ["submit", str(audio), "--server", service.url, "--user", "lee"]
    args += ["--ca", str(service.ca), "--urgent"]
    done = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    job_id, state = done.stdout.split()
    assert state == "received"
    with open_store(service.config) as store:
        job = store.get(job_id)
    assert (job.author, job.priority, job.client) == ("Dr Lee", "urgent", CLIENT)
    env.pop("TRANSCRIBE_PASSWORD")  # the token was kept: no password needed again
    again = runner.invoke(app, args, env={**env, "TRANSCRIBE_PASSWORD": None})
    assert again.exit_code == 0 and again.stdout.strip() == f"{job_id} received (already received)"
    bad = tmp_path / "noise.wav"
    bad.write_bytes(os.urandom(2000))
    refused = runner.invoke(
        app,
        [*args[:1], str(bad), *args[2:]],
        env={"TRANSCRIBE_PASSWORD": None, "XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"]},
    )
    assert refused.exit_code == 6 and "cannot read audio" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


def test_the_log_holds_no_file_name_patient_or_token(service: Service) -> None:
    upload(
        service,
        "hart",
        silence(6),
        file_name="Secret-Name.wav",
        sidecar=json.dumps({"patient": PATIENT}),
    )
    upload(service, "sec", b"junk", file_name="Other-Secret.wav")
    log = service.log.read_text(encoding="utf-8")
    assert "/api/v1/dictations" in log and "upload: account hart" in log
    secrets = [PASSWORD, PATIENT, "Secret-Name", "Other-Secret", "Dupont", *service.tokens.values()]
    assert not [s for s in secrets if s in log]


def raw_request(service: Service, data: bytes) -> tuple[int, bytes]:
    """One request over TLS by hand: httpx would not declare a length it does not send."""
    port = int(service.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(service.ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = tls.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False
