"""The encrypted archive: real pyrage, the real `age` tool, real signed PDFs and pdfsig.

Jobs are made the way the letter stage leaves them (state ``rendered``, a signed
PDF/A and the JSON stage files in ``work/jobs/<job>/``), then archived.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import unicodedata
import wave
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import CLIENT, PROJECT, execute
from tests.conftest import query as raw_query
from transcribe.archive import (
    ArchiveError,
    archive_job,
    archive_pending,
    get_item,
    list_archive,
    parse_retention,
    purge,
    rotate_keys,
    verify_archive,
)
from transcribe.archive import crypto as archive_crypto
from transcribe.archive import write as archive_write
from transcribe.config import Config
from transcribe.documents import (
    DocumentMetadata,
    RenderOptions,
    SigningOptions,
    make_test_certificate,
    render_pdf,
)
from transcribe.errors import ConfigError, StateError, WorkspaceError
from transcribe.keys import PASSPHRASE_ENV, ArchiveKeys, load_identities
from transcribe.stages.transcription import job_dir
from transcribe.store import Job, JobState, JobStore, new_job_id, open_store
from transcribe.store.audit import verify_audit
from transcribe.workspace import init_workspace

pytestmark = pytest.mark.skipif(
    shutil.which("age") is None or shutil.which("soffice") is None,
    reason="needs the Debian `age` tool and LibreOffice (make setup)",
)

runner = CliRunner()
PATIENT = "Mrs Hélène Quimperlé-Añorga"
PHRASE = "paroxysmal atrial fibrillation remains quiet on apixaban since the cardioversion"
LETTER = (
    f"I reviewed {PATIENT} in clinic today. Her {PHRASE}. "
    "Blood pressure 128/76. I have not changed her treatment."
)
FIELDS = {
    "patient": PATIENT,
    "dob": "01/02/1960",
    "hospital_number": "RC-000123",
    "recipient": "Dr Jane Smith",
    "recipient_address": "The Surgery, 1 High Street\nExeter EX4 1AA",
    "clinic_date": "3 March 2025",
    "salutation": "Dr Smith",
}
PASS_ENV = "TRANSCRIBE_TEST_ARCHIVE_SIGNING"


@pytest.fixture(scope="module")
def signed_pdf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bytes]:
    """One real signed PDF/A with the patient's name and the letter text in it."""
    folder = tmp_path_factory.mktemp("archive-pdf")
    cert = make_test_certificate(folder / "client.p12", passphrase="s3cret")
    os.environ[PASS_ENV] = "s3cret"
    try:
        render_pdf(
            PROJECT / "templates" / CLIENT / "clinic-letter.docx",
            LETTER,
            FIELDS,
            folder / "letter.pdf",
            options=RenderOptions(timeout_s=120, work_dir=folder),
            signing=SigningOptions(pkcs12=cert.pkcs12, passphrase_env=PASS_ENV),
            metadata=DocumentMetadata(
                title="Clinic letter",
                author="Dr Hart",
                language="en-GB",
                job_id="test",
                date=dt.date(2025, 3, 3),
            ),
        )
    finally:
        os.environ.pop(PASS_ENV, None)
    yield (folder / "letter.pdf").read_bytes()


def write_wav(path: Path, seconds: float = 0.3) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(os.urandom(int(16000 * seconds)) * 2)


def make_rendered_job(
    config: Config, store: JobStore, pdf: bytes, *, patient: str = PATIENT, client: str = CLIENT
) -> Job:
    """A job as the letter stage leaves it: ``rendered``, every stage file present."""
    job_id = new_job_id()
    folder = config.paths.work / "jobs" / job_id
    folder.mkdir(parents=True, mode=0o700)
    write_wav(folder / "audio.wav")
    stage_files = {
        "sidecar.json": {"author": "Dr Hart", "patient": patient, "document_type": "letter"},
        "transcript.json": {"text": LETTER, "segments": [{"text": LETTER, "words": []}]},
        "draft.json": {"text": LETTER, "fields": {"patient": patient}},
        "approved.json": {"schema": 1, "text": LETTER, "fields": {**FIELDS, "patient": patient}},
        "corrections.json": {"first_draft": LETTER, "edits": []},
    }
    for name, payload in stage_files.items():
        (folder / name).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    (folder / "letter.pdf").write_bytes(pdf)
    return store.insert_job(
        id=job_id,
        client=client,
        state=str(JobState.RENDERED),
        source_name="dictation-0001.wav",
        audio_path=f"work/jobs/{job_id}/audio.wav",
        content_hash=os.urandom(32).hex(),
        author="Dr Hart",
        document_type="clinic letter",
    )


@pytest.fixture
def store(config: Config) -> Iterator[JobStore]:
    with open_store(config, actor="test") as opened:
        yield opened


def items_of(config: Config, store: JobStore, job_id: str) -> dict[str, Path]:
    (entry,) = [j for j in list_archive(config, store) if j.job_id == job_id]
    return {item.kind: config.paths.archive / item.path for item in entry.items}


def age_decrypt(identity_file: Path, path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["age", "--decrypt", "-i", str(identity_file), str(path)],
        capture_output=True,
        timeout=30,
    )


# -- the write path --------------------------------------------------------------------


def test_archived_letter_opens_with_the_age_tool_byte_identical(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    done = archive_job(config, store, job.id)
    assert done.state == JobState.ARCHIVED
    paths = items_of(config, store, job.id)
    month = dt.datetime.fromtimestamp(job.created_at, dt.UTC).strftime("%Y/%m")
    assert paths["letter"] == config.paths.archive / CLIENT / month / f"{job.id}.pdf.age"
    assert set(paths) == {"letter", "audio", "transcript"}

    result = age_decrypt(config.paths.keys / "archive.key", paths["letter"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == signed_pdf
    (tmp_path / "out.pdf").write_bytes(result.stdout)
    sig = subprocess.run(["pdfsig", str(tmp_path / "out.pdf")], capture_output=True, text=True)
    assert "Signature is Valid" in sig.stdout + sig.stderr

    bundle = json.loads(age_decrypt(config.paths.keys / "archive.key", paths["transcript"]).stdout)
    assert bundle["files"]["approved"]["text"] == LETTER
    assert bundle["files"]["sidecar"]["patient"] == PATIENT
    assert age_decrypt(config.paths.keys / "archive.key", paths["audio"]).stdout[:4] == b"RIFF"

    assert not job_dir(config, job).exists()
    assert verify_archive(config, store).ok
    assert verify_audit(store).ok
    actions = [e["action"] for e in store.events(job.id)]
    assert actions[-3:] == ["archive-write", "state", "plaintext-delete"]


def test_folders_keys_store_and_items_are_owner_only(
    config: Config, store: JobStore, signed_pdf: bytes
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    home = config.paths.home
    for name in ("archive.key", "archive.pub", "index.key"):
        assert (config.paths.keys / name).stat().st_mode & 0o777 == 0o600
    assert (home / "jobs.db").stat().st_mode & 0o777 == 0o600
    for folder in (config.paths.keys, config.paths.work, config.paths.archive):
        assert folder.stat().st_mode & 0o777 == 0o700
    for path in config.paths.archive.rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path


def plaintext_hits(home: Path) -> list[str]:
    """Every non-.age file of the workspace holding the name, the letter, a PDF or audio."""
    name_forms = {PATIENT, "Quimperlé-Añorga", "Quimperle-Anorga"}
    needles = {PHRASE.encode()}
    for form in name_forms:
        for normal in ("NFC", "NFD"):
            needles.add(unicodedata.normalize(normal, form).encode())
        needles.add(json.dumps(form).strip('"').encode())  # \u-escaped JSON
    hits = []
    for path in sorted(home.rglob("*")):
        if not path.is_file() or path.is_symlink() or path.name.endswith(".age"):
            continue
        data = path.read_bytes()
        folded = data.lower()
        if any(n.lower() in folded for n in needles):
            hits.append(f"{path.relative_to(home)}: name or letter text")
        if data.startswith((b"%PDF", b"RIFF")):
            hits.append(f"{path.relative_to(home)}: a PDF or audio file")
    return hits


def test_no_plaintext_left_in_the_workspace_after_archiving(
    config: Config, store: JobStore, signed_pdf: bytes
) -> None:
    jobs = [make_rendered_job(config, store, signed_pdf) for _ in range(2)]
    home = config.paths.home
    assert any("sidecar.json" in hit for hit in plaintext_hits(home))  # the scan works
    for job in jobs:
        archive_job(config, store, job.id)
    list_archive(config, store, patient=PATIENT)  # a search leaves no name behind
    assert (home / "jobs.db-wal").exists()  # scanned too, uncheckpointed
    assert plaintext_hits(home) == []
    details = " ".join(str(e["detail"]) for e in store.events())
    assert "Quimper" not in details and "apixaban" not in details


@pytest.mark.both_backends
def test_blind_index_finds_the_patient_without_storing_the_name(
    config: Config, store: JobStore, signed_pdf: bytes
) -> None:
    mine = make_rendered_job(config, store, signed_pdf)
    other = make_rendered_job(config, store, signed_pdf, patient="Mr John Smith")
    for job in (mine, other):
        archive_job(config, store, job.id)
    for query in ("Quimperlé-Añorga", "QUIMPERLE ANORGA Helene", "Mme Hélène Quimperle-Anorga"):
        assert [j.job_id for j in list_archive(config, store, patient=query)] == [mine.id]
    assert list_archive(config, store, patient="Hélène Smith") == []
    assert [j.job_id for j in list_archive(config, store, patient="smith")] == [other.id]
    assert list_archive(config, store, matter="Quimperlé") == []
    terms = raw_query(store, "SELECT term FROM blind_index")
    assert terms and all(len(t[0]) == 64 for t in terms)
    assert next(e["detail"] for e in store.events() if e["action"] == "archive-search") == (
        "by patient: 1 job(s)"
    )


@pytest.mark.both_backends
@pytest.mark.parametrize("crash_at", ["second item", "before the commit", "before clean-up"])
def test_a_crash_anywhere_then_a_rerun_ends_archived_with_nothing_lost(
    config: Config,
    store: JobStore,
    signed_pdf: bytes,
    crash_at: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    seal, transition, clean = archive_write.seal, store.transition, archive_write.remove_plaintext
    calls = []

    def crashing_seal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return seal(*args, **kwargs)

    def crashing(*args, **kwargs):
        raise KeyboardInterrupt

    if crash_at == "second item":
        monkeypatch.setattr(archive_write, "seal", crashing_seal)
    elif crash_at == "before the commit":
        monkeypatch.setattr(store, "transition", crashing)
    else:
        monkeypatch.setattr(archive_write, "remove_plaintext", crashing)
    with pytest.raises(KeyboardInterrupt):
        archive_job(config, store, job.id)
    assert (job_dir(config, job) / "letter.pdf").read_bytes() == signed_pdf  # nothing lost
    monkeypatch.setattr(archive_write, "seal", seal)
    monkeypatch.setattr(store, "transition", transition)
    monkeypatch.setattr(archive_write, "remove_plaintext", clean)

    assert [j.id for j in archive_pending(config, store)] == (
        [] if crash_at == "before clean-up" else [job.id]
    )
    assert store.get(job.id).state == JobState.ARCHIVED
    assert not job_dir(config, job).exists()
    assert verify_archive(config, store).ok and verify_audit(store).ok
    assert not [p for p in config.paths.archive.rglob(".tmp-*")]
    out = config.paths.home / "back.pdf"
    get_item(config, store, job.id, out)
    assert out.read_bytes() == signed_pdf
    out.unlink()
    assert plaintext_hits(config.paths.home) == []


@pytest.mark.both_backends
def test_only_a_rendered_job_is_archived(
    config: Config, store: JobStore, signed_pdf: bytes
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    execute(store, "UPDATE jobs SET state = 'approved' WHERE id = ?", job.id)
    with pytest.raises(StateError, match="not rendered"):
        archive_job(config, store, job.id)
    assert job_dir(config, job).exists()


# -- reading back, and what goes wrong -------------------------------------------------


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


@pytest.mark.parametrize(("damage", "words"), [(flip_byte, "altered"), (truncate, "truncated")])
def test_damaged_item_is_named_by_verify_and_refused_by_get(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path, damage, words: str
) -> None:
    good = make_rendered_job(config, store, signed_pdf)
    bad = make_rendered_job(config, store, signed_pdf)
    for job in (good, bad):
        archive_job(config, store, job.id)
    letter = items_of(config, store, bad.id)["letter"]
    damage(letter)

    report = verify_archive(config, store)
    assert [(p.path, p.job_id) for p in report.problems] == [
        (str(letter.relative_to(config.paths.home)), bad.id)
    ]
    assert words in report.problems[0].message
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "letter.pdf"
    with pytest.raises(ArchiveError, match=words) as caught:
        get_item(config, store, bad.id, out)
    assert "\n" not in str(caught.value) and letter.name in str(caught.value)
    assert list(out_dir.iterdir()) == []
    assert store.events(bad.id)[-1]["action"] == "archive-export-refused"
    get_item(config, store, good.id, out)
    assert out.read_bytes() == signed_pdf and out.stat().st_mode & 0o777 == 0o600

    result = runner.invoke(app, ["--home", str(config.paths.home), "archive", "verify"])
    assert result.exit_code == 11 and letter.name in result.output


@pytest.mark.both_backends
def test_damage_that_keeps_the_index_hash_is_still_caught(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path
) -> None:
    """An attacker who also fixes the index's ciphertext hash: decryption catches it."""
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    letter = items_of(config, store, job.id)["letter"]
    flip_byte(letter)
    from transcribe.fsutil import sha256_file

    execute(
        store,
        "UPDATE archive_items SET age_sha256 = ? WHERE job_id = ? AND kind = 'letter'",
        sha256_file(letter),
        job.id,
    )
    (problem,) = verify_archive(config, store).problems
    assert "truncated or altered" in problem.message
    with pytest.raises(ArchiveError, match="truncated or altered"):
        get_item(config, store, job.id, tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


def test_missing_file_and_wrong_key_are_clear(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    paths = items_of(config, store, job.id)
    paths["audio"].unlink()
    with pytest.raises(ArchiveError, match="is missing"):
        get_item(config, store, job.id, tmp_path / "a.wav", kind="audio")
    assert [p.message for p in verify_archive(config, store).problems] == ["missing"]

    key = config.paths.keys / "archive.key"
    key.write_text(str(pyrage.x25519.Identity.generate()) + "\n")
    with pytest.raises(ArchiveError, match=r"wrong key\?"):
        get_item(config, store, job.id, tmp_path / "l.pdf")
    assert not (tmp_path / "l.pdf").exists()
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        get_item(config, store, job.id, tmp_path / "l.pdf")
    key.unlink()
    with pytest.raises(WorkspaceError, match="no archive key"):
        get_item(config, store, job.id, tmp_path / "l.pdf")


def test_verify_checks_the_letters_signature(
    config: Config, store: JobStore, signed_pdf: bytes
) -> None:
    position = signed_pdf.index(b"\n%", 0, 64) + 3  # inside the first signed range
    forged = signed_pdf[:position] + bytes([signed_pdf[position] ^ 1]) + signed_pdf[position + 1 :]
    job = make_rendered_job(config, store, forged)
    archive_job(config, store, job.id)
    (problem,) = verify_archive(config, store).problems
    assert problem.kind == "letter" and "signature check failed" in problem.message


def test_get_refuses_to_overwrite_and_the_cli_error_is_one_line(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    out = tmp_path / "letter.pdf"
    out.write_bytes(b"mine")
    with pytest.raises(ConfigError, match="already exists"):
        get_item(config, store, job.id, out)
    assert out.read_bytes() == b"mine"
    truncate(items_of(config, store, job.id)["letter"])
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "cli.py"),
            "--home",
            str(config.paths.home),
            "archive",
            "get",
            job.id,
            "-o",
            str(tmp_path / "new.pdf"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 11
    assert result.stderr.startswith("error: archive file archive/") and "truncated" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "new.pdf").exists()


# -- keys --------------------------------------------------------------------------------


def test_init_creates_the_keys_once(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert runner.invoke(app, ["--home", str(home), "init"]).exit_code == 0
    key = (home / "keys" / "archive.key").read_text()
    assert key.startswith("# created: ") and "AGE-SECRET-KEY-1" in key
    (home / "keys" / "archive.key").chmod(0o640)
    init_workspace(home)
    assert (home / "keys" / "archive.key").read_text() == key
    assert (home / "keys" / "archive.key").stat().st_mode & 0o777 == 0o600
    public = (home / "keys" / "archive.pub").read_text().strip()
    assert str(load_identities(home / "keys" / "archive.key")[0].to_public()) == public


def test_client_recipients_let_the_client_open_their_archive(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path
) -> None:
    client_key = tmp_path / "client.key"
    subprocess.run(["age-keygen", "-o", str(client_key)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(client_key)], check=True, capture_output=True, text=True
    ).stdout
    recipients = config.paths.keys / f"{CLIENT}.recipients"
    recipients.write_text(f"# the clinic's own key\n{public}\n")
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    letter = items_of(config, store, job.id)["letter"]
    assert age_decrypt(client_key, letter).stdout == signed_pdf
    assert age_decrypt(config.paths.keys / "archive.key", letter).stdout == signed_pdf

    recipients.write_text("age1notakey\n")
    other = make_rendered_job(config, store, signed_pdf)
    with pytest.raises(ConfigError, match=rf"{CLIENT}.recipients:1 is not an age recipient"):
        archive_job(config, store, other.id)
    assert store.get(other.id).state == JobState.RENDERED


@pytest.mark.both_backends
def test_rotation_reencrypts_everything_and_retires_the_old_key(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path
) -> None:
    jobs = [make_rendered_job(config, store, signed_pdf) for _ in range(2)]
    for job in jobs:
        archive_job(config, store, job.id)
    old_key = tmp_path / "old.key"
    shutil.copy(config.paths.keys / "archive.key", old_key)
    old = load_identities(old_key)

    result = runner.invoke(app, ["--home", str(config.paths.home), "keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "6 item(s) re-encrypted" in result.output
    newest = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, newest.id)

    new_key = config.paths.keys / "archive.key"
    assert new_key.read_text() != old_key.read_text()
    for job in [*jobs, newest]:
        for path in items_of(config, store, job.id).values():
            with pytest.raises(pyrage.DecryptError):
                pyrage.decrypt(path.read_bytes(), old)
        assert age_decrypt(new_key, items_of(config, store, job.id)["letter"]).stdout == signed_pdf
    (retired,) = (config.paths.keys / "retired").iterdir()
    assert retired.read_text() == old_key.read_text() and retired.stat().st_mode & 0o777 == 0o600
    assert not ArchiveKeys(config.paths.keys).rotating()
    assert verify_archive(config, store).ok and verify_audit(store).ok
    assert "key-rotate" in [e["action"] for e in store.events()]
    assert plaintext_hits(config.paths.home) == []


def test_an_interrupted_rotation_resumes(
    config: Config, store: JobStore, signed_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [make_rendered_job(config, store, signed_pdf) for _ in range(2)]
    for job in jobs:
        archive_job(config, store, job.id)
    from transcribe.archive import rotate as rotate_module

    reseal, calls = rotate_module.reseal, []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return reseal(*args, **kwargs)

    monkeypatch.setattr(rotate_module, "reseal", crashing)
    with pytest.raises(KeyboardInterrupt):
        rotate_keys(config, store)
    keys = ArchiveKeys(config.paths.keys)
    assert keys.rotating()
    middle = make_rendered_job(config, store, signed_pdf)  # archived during the rotation
    archive_job(config, store, middle.id)
    monkeypatch.setattr(rotate_module, "reseal", reseal)
    rotate_keys(config, store)
    assert not keys.rotating()
    assert verify_archive(config, store).ok
    new = load_identities(keys.identity_path)
    for job in [*jobs, middle]:
        assert pyrage.decrypt(items_of(config, store, job.id)["letter"].read_bytes(), new) == (
            signed_pdf
        )


def test_a_damaged_item_stops_the_rotation_before_any_key_is_retired(
    config: Config, store: JobStore, signed_pdf: bytes
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    flip_byte(items_of(config, store, job.id)["transcript"])
    before = (config.paths.keys / "archive.key").read_text()
    with pytest.raises(ArchiveError, match=r"cannot rotate keys.*altered"):
        rotate_keys(config, store)
    assert (config.paths.keys / "archive.key").read_text() == before


def test_passphrase_protected_archive_key(
    tmp_path: Path, signed_pdf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    home = tmp_path / "ws"
    init_workspace(home, demo=True)
    from transcribe.config import load_config

    config = load_config(home)
    key = config.paths.keys / "archive.key"
    assert key.read_bytes().startswith(b"age-encryption.org/v1")
    assert b"AGE-SECRET-KEY" not in key.read_bytes()
    with open_store(config) as store:
        job = make_rendered_job(config, store, signed_pdf)
        archive_job(config, store, job.id)  # its decrypt-verify step needs the passphrase
        monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
        with pytest.raises(ConfigError, match="wrong passphrase"):
            get_item(config, store, job.id, tmp_path / "m.pdf")
        assert not (tmp_path / "m.pdf").exists()
        monkeypatch.delenv(PASSPHRASE_ENV)
        with pytest.raises(ConfigError, match=f"set {PASSPHRASE_ENV}"):
            verify_archive(config, store)
    letter = next(config.paths.archive.rglob("*.pdf.age"))
    assert age_with_passphrase(key, letter, "correct horse") == signed_pdf


def age_with_passphrase(identity: Path, path: Path, passphrase: str) -> bytes:
    """The `age` tool asks for an encrypted identity's passphrase on the terminal."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child: age reads the passphrase from its terminal
        os.execvp("age", ["age", "-d", "-i", str(identity), "-o", str(path) + ".out", str(path)])
    deadline = time.monotonic() + 30
    seen = b""
    while b"passphrase" not in seen.lower() and time.monotonic() < deadline:
        seen += os.read(fd, 1024)
    os.write(fd, passphrase.encode() + b"\n")
    while True:
        try:
            if not os.read(fd, 1024):
                break
        except OSError:
            break
    os.waitpid(pid, 0)
    out = Path(str(path) + ".out")
    data = out.read_bytes()
    out.unlink()
    return data


# -- retention -------------------------------------------------------------------------


def age_items(store: JobStore, job_id: str, days: float) -> None:
    execute(
        store,
        "UPDATE archive_items SET archived_at = archived_at - ? WHERE job_id = ?",
        days * 86400,
        job_id,
    )


@pytest.mark.both_backends
def test_retention_purges_expired_audio_and_audits_it(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path
) -> None:
    old = make_rendered_job(config, store, signed_pdf)
    recent = make_rendered_job(config, store, signed_pdf)
    for job in (old, recent):
        archive_job(config, store, job.id)
    age_items(store, old.id, 31)
    age_items(store, recent.id, 29)
    audio = items_of(config, store, old.id)["audio"]

    result = runner.invoke(app, ["--home", str(config.paths.home), "archive", "purge", "--dry-run"])
    assert result.exit_code == 0 and "would purge" in result.output and audio.exists()
    result = runner.invoke(app, ["--home", str(config.paths.home), "archive", "purge"])
    assert result.exit_code == 0, result.output
    assert f"purged {old.id} audio (retention 30 days)" in result.output
    assert not audio.exists() and items_of(config, store, recent.id)["audio"].exists()
    purges = [e for e in store.events(old.id) if e["action"] == "purge"]
    assert [e["detail"] for e in purges] == ["audio: retention of 30 days"]
    with pytest.raises(ArchiveError, match="purged"):
        get_item(config, store, old.id, tmp_path / "a.wav", kind="audio")
    get_item(config, store, old.id, tmp_path / "l.pdf")  # letters are kept by default
    report = verify_archive(config, store)
    assert report.ok and report.purged == 1
    assert purge(config, store) == []  # nothing more is due
    assert verify_audit(store).ok


@pytest.mark.both_backends
def test_client_retention_overrides_and_document_purge(
    config: Config, store: JobStore, signed_pdf: bytes
) -> None:
    toml = config.paths.home / "transcribe.toml"
    toml.write_text(
        toml.read_text()
        + f"\n[retention]\naudio_days = 60\n\n[retention.{CLIENT}]\ndocuments_days = 365\n"
    )
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    age_items(store, job.id, 400)
    done = purge(config, store)
    assert sorted((p.kind, p.days) for p in done) == [
        ("audio", 60),
        ("letter", 365),
        ("transcript", 365),
    ]
    assert not any(items_of(config, store, job.id)[k].exists() for k in ("letter", "audio"))
    assert list_archive(config, store, patient=PATIENT) == []  # its blind terms went too


def test_retention_settings_are_validated() -> None:
    policy = parse_retention({"audio_days": 10, "cabinet-martin": {"documents_days": 3650}})
    assert policy.for_client("cabinet-martin").audio_days == 10
    assert policy.for_client("cabinet-martin").documents_days == 3650
    assert policy.for_client("other").documents_days is None
    assert parse_retention({}).default.audio_days == 30
    assert parse_retention({"audio_days": 0}).default.audio_days == 0
    assert parse_retention({"x": {"audio_days": "keep"}}).for_client("x").audio_days is None
    with pytest.raises(ConfigError, match="audio_days must be a number of days"):
        parse_retention({"audio_days": -1})
    with pytest.raises(ConfigError, match=r"unknown key 'pdf_days' in \[retention\.x\]"):
        parse_retention({"x": {"pdf_days": 1}})


# -- the command line ------------------------------------------------------------------


@pytest.mark.both_backends
def test_archive_list_get_verify_through_the_cli(
    config: Config, store: JobStore, signed_pdf: bytes, tmp_path: Path
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    home = ["--home", str(config.paths.home)]
    result = runner.invoke(app, [*home, "archive", "list", "--json"])
    assert result.exit_code == 0
    (row,) = json.loads(result.output)
    assert row["id"] == job.id and set(row["items"]) == {"letter", "audio", "transcript"}
    assert "Quimper" not in result.output
    result = runner.invoke(app, [*home, "archive", "list", "--patient", "quimperlé-añorga"])
    assert result.exit_code == 0 and job.id in result.output
    out = tmp_path / "t.json"
    result = runner.invoke(
        app, [*home, "archive", "get", job.id, "-o", str(out), "--item", "transcript"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["files"]["approved"]["text"] == LETTER
    result = runner.invoke(app, [*home, "archive", "verify"])
    assert result.exit_code == 0 and "3 item(s) verified" in result.output
    result = runner.invoke(app, [*home, "archive", "get", "20990101-000000", "-o", str(out)])
    assert result.exit_code == 4
    events = [e for e in store.events(job.id) if e["action"] == "archive-export"]
    assert events and events[-1]["detail"] == "transcript decrypted to a file"
    assert "Quimper" not in json.dumps([dict(e) for e in store.events()])


def test_archive_stores_no_plaintext_even_in_the_database_file(
    config: Config, store: JobStore, signed_pdf: bytes
) -> None:
    job = make_rendered_job(config, store, signed_pdf)
    archive_job(config, store, job.id)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = (config.paths.home / "jobs.db").read_bytes()
    assert b"Quimper" not in data and PHRASE.encode() not in data
    with sqlite3.connect(config.paths.home / "jobs.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"archive_items", "blind_index"} <= tables
    assert archive_crypto.ArchiveError.exit_code == 11


def test_archive_writers_exclude_each_other(config: Config) -> None:
    from transcribe.archive.lock import archive_lock
    from transcribe.errors import StoreError

    busy = pytest.raises(StoreError, match="archive is busy")
    with archive_lock(config), busy, archive_lock(config, exclusive=False, timeout_s=0.3):
        pass
    with archive_lock(config, exclusive=False), archive_lock(config, exclusive=False):
        pass  # readers share it
