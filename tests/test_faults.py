"""Resource faults (issue 8), produced for real: a full disk, LibreOffice missing or
hanging, a wrong signing passphrase, a wrong archive key.

Each one must give a clear one-line reason, leave the job ``failed`` (retryable, not
quarantined: the input was fine), keep nothing half-written (no partial stage file,
no temporary file, no unsigned or unverified letter, no stray archive item), keep the
audit chain intact, and let ``retry`` bring the job through once the fault is gone.

The full disk is a real tmpfs, filled to the last byte; the only fake is the hanging
``soffice`` (a hang cannot be produced on demand).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import CLIENT, PROJECT, set_config
from transcribe.archive import archive_pending, list_archive
from transcribe.config import Config, load_config
from transcribe.documents import (
    DocumentMetadata,
    OneShotConverter,
    RenderOptions,
    SigningOptions,
    make_test_certificate,
    render_pdf,
)
from transcribe.fsutil import TMP_PREFIX, atomic_write_json
from transcribe.runners.watcher import watch
from transcribe.stages.intake import take_in
from transcribe.stages.letter import finish_all_approved, finish_approved, letter_path, render_job
from transcribe.stages.transcription import job_dir
from transcribe.store import Job, JobState, new_job_id, open_store
from transcribe.workspace import init_workspace

pytestmark = pytest.mark.skipif(
    shutil.which("soffice") is None or shutil.which("age") is None,
    reason="needs LibreOffice and age (make setup)",
)

runner = CliRunner()
CLI = [sys.executable, str(PROJECT / "cli.py")]
FR_TEXT = "Cher confrère,\nJe vous remercie de m'avoir adressé Mme Lucie Bernard (fictive)."
FR_FIELDS = {
    "patient": "Lucie Bernard (fictive)",
    "date_naissance": "01/02/1958",
    "reference": "R1",
}
EN_TEXT = "I reviewed Mrs Ada Testcase (fictitious) in clinic today. She is well."
EN_FIELDS = {
    "patient": "Ada Testcase",
    "dob": "01/02/1960",
    "hospital_number": "RC-1",
    "recipient": "Dr Jane Smith",
    "recipient_address": "1 High Street",
    "clinic_date": "3 March 2025",
    "salutation": "Dr Smith",
}


# -- a small disk that really fills up ------------------------------------------------


class SmallDisk:
    """A tmpfs of its own, so "disk full" is the kernel's ENOSPC and nothing else."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler.bin"

    def fill(self) -> None:
        """Take every last byte (writes return short, then ENOSPC)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                os.write(fd, chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.path).free == 0

    def free(self) -> None:
        for path in (self.filler, *self.path.glob("held-*")):
            path.unlink()

    def temp_files(self) -> list[Path]:
        return sorted(self.path.rglob(f"{TMP_PREFIX}*"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small tmpfs with")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def workspace(root: Path, **folders: Path) -> Config:
    """A demo workspace in ``root/home`` whose ``[paths]`` folders may live elsewhere."""
    home = root / "home"
    init_workspace(home, demo=True)
    set_config(home, **{name: f'"{folder}"' for name, folder in folders.items()})
    init_workspace(home, demo=True)  # creates the moved folders, owner-only
    return load_config(home)


# -- helpers ---------------------------------------------------------------------------


def cli(config: Config, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--home", str(config.paths.home), *args])
    return result.exit_code, result.output


def assert_audit_intact(config: Config) -> None:
    code, output = cli(config, "audit", "verify")
    assert code == 0 and "audit log intact" in output, output


def assert_failed(job: Job, *words: str) -> None:
    """Failed (not quarantined), one line, with the words an operator needs."""
    assert job.state == JobState.FAILED, (job.state, job.reason)
    assert job.reason and "\n" not in job.reason
    for word in words:
        assert word in job.reason, job.reason


def retry(config: Config, job_id: str, expected: str) -> None:
    code, output = cli(config, "retry", job_id)
    assert code == 0 and expected in output, output


def take_in_clip(config: Config, clip: Path) -> Job:
    dropped = config.paths.inbox / CLIENT / "d0.wav"
    shutil.copyfile(clip, dropped)
    with open_store(config) as store:
        result = take_in(dropped, config, store)
    assert result.job is not None and result.outcome == "accepted", result
    return result.job


def approved_job(config: Config, client: str = "cabinet-martin") -> str:
    """A job as the review loop leaves it: approved text and fields, nothing else."""
    job_id = new_job_id()
    with open_store(config) as store:
        store.insert_job(
            id=job_id, client=client, state=JobState.APPROVED, source_name="d.wav", language="fr"
        )
    folder = config.paths.work / "jobs" / job_id
    folder.mkdir(parents=True, mode=0o700)
    atomic_write_json(folder / "approved.json", {"text": FR_TEXT, "fields": FR_FIELDS})
    return job_id


def only_approved_json(config: Config, job_id: str) -> None:
    """Nothing but the approved text: no letter, no scratch folder, no temporary file."""
    assert sorted(p.name for p in (config.paths.work / "jobs" / job_id).iterdir()) == [
        "approved.json"
    ]


def archived_files(config: Config) -> list[Path]:
    return sorted(p for p in config.paths.archive.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def signed_pdf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One real signed PDF/A (one LibreOffice run for the archive tests)."""
    folder = tmp_path_factory.mktemp("faults-pdf")
    cert = make_test_certificate(folder / "c.p12", passphrase="pw")
    passphrase = folder / "pass"
    passphrase.write_text("pw\n")
    passphrase.chmod(0o600)
    render_pdf(
        PROJECT / "templates" / CLIENT / "clinic-letter.docx",
        EN_TEXT,
        EN_FIELDS,
        folder / "letter.pdf",
        options=RenderOptions(work_dir=folder),
        signing=SigningOptions(pkcs12=cert.pkcs12, passphrase_file=passphrase),
        metadata=DocumentMetadata(
            title="Clinic letter", author="Dr Hart", language="en-GB", date=dt.date(2025, 3, 3)
        ),
    )
    return (folder / "letter.pdf").read_bytes()


def rendered_job(config: Config, pdf: bytes) -> str:
    """A job as the letter stage leaves it: signed letter, audio, approved text."""
    job_id = new_job_id()
    folder = config.paths.work / "jobs" / job_id
    folder.mkdir(parents=True, mode=0o700)
    (folder / "audio.wav").write_bytes(b"RIFF" + os.urandom(2000))
    atomic_write_json(folder / "approved.json", {"text": EN_TEXT, "fields": EN_FIELDS})
    (folder / "letter.pdf").write_bytes(pdf)
    with open_store(config) as store:
        store.insert_job(
            id=job_id,
            client=CLIENT,
            state=JobState.RENDERED,
            source_name="d.wav",
            audio_path=os.path.relpath(folder / "audio.wav", config.paths.home),
            language="en",
        )
    return job_id


# -- disk full -------------------------------------------------------------------------


def test_disk_full_while_writing_the_transcript_fails_the_job_and_retry_finishes_it(
    tmp_path: Path, small_disk: SmallDisk, clips: list[Path], engine_factory
) -> None:
    config = workspace(tmp_path, work=small_disk.path / "work")
    job = take_in_clip(config, clips[1])  # the audio still fits
    small_disk.fill()  # ... the transcript does not

    def engine():
        return engine_factory(config)

    summary = watch(config, once=True, engine_factory=engine)  # returns: the service goes on
    (failed,) = summary.transcribed
    assert_failed(failed, "no space left", str(job_dir(config, job)), f"retry {job.id}")
    folder = job_dir(config, job)
    assert sorted(p.name for p in folder.iterdir()) == ["audio.wav", "sidecar.json"]
    assert small_disk.temp_files() == []
    assert_audit_intact(config)

    small_disk.free()
    retry(config, job.id, "received")
    watch(config, once=True, engine_factory=engine)
    with open_store(config) as store:
        assert store.get(job.id).state == JobState.REVIEW
    assert "chest" in (folder / "transcript.json").read_text(encoding="utf-8").lower()
    assert (folder / "draft.json").is_file()


def test_a_full_disk_under_the_job_store_corrupts_nothing_and_loses_nothing(
    small_disk: SmallDisk, clips: list[Path]
) -> None:
    """The whole workspace, jobs.db included, on the disk that fills up: no state can
    be recorded, so the run stops with one line (exit 10) and changes nothing."""
    config = workspace(small_disk.path)
    job = take_in_clip(config, clips[2])
    with open_store(config) as held:  # the review loop has it open
        held.checkpoint()  # an empty WAL: the next commit needs new blocks
        small_disk.fill()
        done = subprocess.run(
            [*CLI, "--home", str(config.paths.home), "watch", "--once"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 10, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "jobs.db cannot be written: database or disk is full" in done.stderr
        assert held.integrity_ok()
        assert held.get(job.id).state == JobState.RECEIVED
        assert (config.paths.home / (job.audio_path or "")).is_file()
        assert small_disk.temp_files() == []
        assert_audit_intact(config)  # reading needs no space
        small_disk.free()
        claimed = held.claim_next()  # the same connection writes again, the job is next
        assert claimed is not None and claimed.id == job.id
        assert claimed.state == JobState.TRANSCRIBING


class FillsDiskAfterConverting:
    """The real one-shot LibreOffice; then the disk fills up, so the signed letter
    itself (not its intermediates) is what cannot be written. The intermediates are
    hard-linked aside first: their clean-up must not make room again."""

    name = "one-shot"

    def __init__(self, disk: SmallDisk) -> None:
        self.disk = disk
        self.real = OneShotConverter()

    def convert(self, docx: Path, pdf: Path, *, pdfa: bool = True) -> None:
        self.real.convert(docx, pdf, pdfa=pdfa)
        for made in (docx, pdf):
            os.link(made, self.disk.path / f"held-{made.name}")
        self.disk.fill()


def test_disk_full_while_writing_the_letter_keeps_no_partial_pdf(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    config = workspace(tmp_path, work=small_disk.path / "work")
    job_id = approved_job(config)
    with open_store(config) as store:
        job = render_job(config, store, job_id, converter=FillsDiskAfterConverting(small_disk))
    assert_failed(job, "rendering: cannot write the letter", "no space left", f"retry {job_id}")
    only_approved_json(config, job_id)
    assert small_disk.temp_files() == []
    assert_audit_intact(config)

    small_disk.free()
    retry(config, job_id, "approved")
    with open_store(config) as store:
        job = render_job(config, store, job_id)
    assert job.state == JobState.RENDERED, job.reason
    assert letter_path(config, job).read_bytes().startswith(b"%PDF-")


def test_disk_full_while_archiving_keeps_the_letter_and_no_stray_item(
    tmp_path: Path, small_disk: SmallDisk, signed_pdf: bytes
) -> None:
    config = workspace(tmp_path, archive=small_disk.path / "archive")
    job_id = rendered_job(config, signed_pdf)
    small_disk.fill()
    with open_store(config) as store:
        (job,) = archive_pending(config, store)  # what the watcher does
    assert_failed(job, "archiving: cannot write archive item", "no space left", f"retry {job_id}")
    assert letter_path(config, job).read_bytes() == signed_pdf  # nothing lost
    assert archived_files(config) == [] and small_disk.temp_files() == []
    assert_audit_intact(config)

    small_disk.free()
    retry(config, job_id, "approved")
    with open_store(config) as store:
        job = finish_approved(config, store, job_id)  # the verified letter is reused
        assert job.state == JobState.ARCHIVED, job.reason
        (entry,) = list_archive(config, store)
    assert {item.kind for item in entry.items} == {"letter", "audio", "transcript"}
    code, output = cli(config, "archive", "get", job_id, "-o", str(tmp_path / "back.pdf"))
    assert code == 0, output
    assert (tmp_path / "back.pdf").read_bytes() == signed_pdf
    assert cli(config, "archive", "verify")[0] == 0

    small_disk.fill()  # decrypting onto a full disk: a workspace fault, not a damaged item
    out = small_disk.path / "back.pdf"
    code, output = cli(config, "archive", "get", job_id, "-o", str(out))
    assert code == 3 and "no space left" in output and output.count("\n") == 1, output
    assert not out.exists() and small_disk.temp_files() == []


# -- LibreOffice -----------------------------------------------------------------------


def test_libreoffice_missing_fails_the_job_and_retry_renders_once_it_is_back(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = approved_job(config)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    with open_store(config) as store:
        job = render_job(config, store, job_id)
    assert_failed(job, "rendering: LibreOffice (soffice) not found", "apt-get install")
    only_approved_json(config, job_id)

    monkeypatch.setenv("PATH", path)
    retry(config, job_id, "approved")
    with open_store(config) as store:
        assert render_job(config, store, job_id).state == JobState.RENDERED
    assert_audit_intact(config)


def test_libreoffice_missing_fails_each_letter_of_a_batch_instead_of_stalling(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More than two letters use a warm LibreOffice: when it cannot start, each job
    still ends failed with its reason (not left approved, retried every turn)."""
    jobs = [approved_job(config) for _ in range(3)]
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    with open_store(config) as store:
        done = finish_all_approved(config, store)
    assert sorted(job.id for job in done) == sorted(jobs)
    for job in done:
        assert_failed(job, "LibreOffice (soffice) not found")
    assert_audit_intact(config)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_a_hanging_libreoffice_is_stopped_with_its_children(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = tmp_path / "pids"
    fake = tmp_path / "soffice"
    fake.write_text(f"#!/bin/sh\necho $$ >> {pids}\nsleep 300 &\necho $! >> {pids}\nwait\n")
    fake.chmod(0o755)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the converter's own scratch
    job_id = approved_job(config)
    with open_store(config) as store:
        converter = OneShotConverter(soffice=str(fake), timeout_s=1)
        job = render_job(config, store, job_id, converter=converter)
    assert_failed(job, "rendering: LibreOffice did not finish within 1 s and was stopped")
    started = [int(line) for line in pids.read_text().split()]
    assert len(started) == 2  # the wrapper and the child it forked, as soffice does
    deadline = time.monotonic() + 10  # SIGKILL is asynchronous: give it a moment
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in started if alive(pid)], "stray LibreOffice processes"
    only_approved_json(config, job_id)
    assert list(scratch.iterdir()) == []
    retry(config, job_id, "approved")
    assert_audit_intact(config)


# -- keys ------------------------------------------------------------------------------


def test_wrong_signing_passphrase_fails_before_any_pdf_exists(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = approved_job(config)
    monkeypatch.setenv("TRANSCRIBE_SIGNING_PASSPHRASE", "not-the-passphrase")
    with open_store(config) as store:
        job = finish_approved(config, store, job_id)
    assert_failed(job, "rendering: cannot open signing certificate signing.p12", "passphrase")
    only_approved_json(config, job_id)  # no unsigned PDF, anywhere
    assert archived_files(config) == []
    assert_audit_intact(config)

    monkeypatch.delenv("TRANSCRIBE_SIGNING_PASSPHRASE")  # the owner-only file again
    retry(config, job_id, "approved")
    with open_store(config) as store:
        assert finish_approved(config, store, job_id).state == JobState.ARCHIVED


def test_a_garbage_client_key_fails_the_job_with_the_file_and_line(
    config: Config, signed_pdf: bytes
) -> None:
    job_id = rendered_job(config, signed_pdf)
    recipients = config.paths.keys / f"{CLIENT}.recipients"
    recipients.write_text("age1notakey\n")
    with open_store(config) as store:
        (job,) = archive_pending(config, store)  # what the watcher does
    assert job.id == job_id
    assert_failed(job, f"archiving: {recipients}:1 is not an age recipient")
    assert letter_path(config, job).read_bytes() == signed_pdf
    assert archived_files(config) == []
    assert_audit_intact(config)

    recipients.unlink()
    retry(config, job_id, "approved")
    with open_store(config) as store:
        assert finish_approved(config, store, job_id).state == JobState.ARCHIVED


def test_a_replaced_archive_key_is_refused_and_get_writes_no_plaintext(
    config: Config, signed_pdf: bytes, tmp_path: Path
) -> None:
    """archive.pub swapped for another key: every item would be lost (nobody holds its
    identity), so nothing is archived. Then ``archive get`` with a foreign identity."""
    public = config.paths.keys / "archive.pub"
    genuine = public.read_text()
    public.write_text(f"{pyrage.x25519.Identity.generate().to_public()}\n")
    job_id = rendered_job(config, signed_pdf)
    with open_store(config) as store:
        job = finish_approved(config, store, job_id)
    assert_failed(job, "was not archived: the archive key cannot open it", "keys/archive.pub")
    assert letter_path(config, job).read_bytes() == signed_pdf
    assert archived_files(config) == []

    public.write_text(genuine)
    retry(config, job_id, "approved")
    with open_store(config) as store:
        assert finish_approved(config, store, job_id).state == JobState.ARCHIVED

    identity = config.paths.keys / "archive.key"
    identity.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    out = tmp_path / "letter.pdf"
    code, output = cli(config, "archive", "get", job_id, "-o", str(out))
    assert code == 11, output
    assert "wrong key?" in output and output.count("\n") == 1
    assert not out.exists() and list(tmp_path.glob(f"{TMP_PREFIX}*")) == []
    assert_audit_intact(config)
