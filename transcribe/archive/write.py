"""The archive stage: rendered -> archived, then no plaintext left behind.

Three items per job, each age-encrypted to the client's recipients:

* ``archive/<client>/<yyyy>/<mm>/<job>.pdf.age`` — the signed letter, byte for byte;
* ``<job>.audio.<ext>.age`` — the dictation, until its retention ends;
* ``<job>.transcript.json.age`` — the final transcript bundle: every JSON file of the
  job's work folder (approved text and fields, Whisper transcript, draft,
  corrections, sidecar...), plus the original file name.

Order, so that a crash anywhere and a re-run end archived with nothing lost: every
item is written and verified (see :func:`~transcribe.archive.crypto.seal`), the
index is committed, the job is committed ``archived``, and only then the work folder
(letter, audio, JSON) is deleted. Re-running on a ``rendered`` job redoes the items
from the still-present plaintext; on an ``archived`` one it finishes the clean-up.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ..config import Config
from ..errors import ConfigError, ExternalToolError, StateError, WorkspaceError
from ..fsutil import fsync_dir, remove_files, write_failure
from ..keys import ArchiveKeys, Identity, Recipient
from ..stages.transcription import job_dir
from ..store import Job, JobState, JobStore, check_attempt
from .crypto import ArchiveError, Sealed, private_dirs, seal
from .index import index_entry, job_terms, names_in
from .lock import archive_lock

log = logging.getLogger(__name__)

LETTER_NAME = "letter.pdf"
KINDS = ("letter", "audio", "transcript")
SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")
#: Archive faults that fail the job (retryable) rather than leave it ``rendered``.
ARCHIVE_FAULTS = (ArchiveError, ConfigError, WorkspaceError, ExternalToolError)


@dataclass(frozen=True)
class Source:
    """One item to archive: where its plaintext is, where its ciphertext goes."""

    kind: str
    relpath: str  # relative to the archive folder
    path: Path | None = None
    data: bytes | None = None

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")


def item_folder(job: Job) -> tuple[str, str, str]:
    """``<client>/<yyyy>/<mm>`` of the dictation's date: stable across re-runs."""
    when = datetime.fromtimestamp(job.created_at, UTC)
    return job.client, f"{when:%Y}", f"{when:%m}"


def audio_source(config: Config, job: Job) -> Path | None:
    folder = job_dir(config, job)
    if job.audio_path:
        path = config.paths.home / job.audio_path
        if path.is_file():
            return path
    found = sorted(p for p in folder.glob("audio.*") if p.is_file())
    return found[0] if found else None


def transcript_bundle(config: Config, job: Job) -> bytes:
    """Every JSON stage file of the job, in one document (the archived transcript)."""
    files = {}
    for path in sorted(job_dir(config, job).glob("*.json")):
        try:
            files[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            files[path.stem] = path.read_text(encoding="utf-8", errors="replace")
    bundle = {
        "schema": 1,
        "job_id": job.id,
        "client": job.client,
        "source_name": job.source_name,
        "document_type": job.document_type,
        "files": files,
    }
    return json.dumps(bundle, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")


def sources(config: Config, job: Job) -> list[Source]:
    folder = "/".join(item_folder(job))
    letter = job_dir(config, job) / LETTER_NAME
    if not letter.is_file():
        raise ArchiveError(f"job {job.id} has no signed letter at {letter}")
    found = [Source("letter", f"{folder}/{job.id}.pdf.age", path=letter)]
    audio = audio_source(config, job)
    if audio is None:
        log.warning("job %s: no audio left to archive", job.id)
    else:
        suffix = audio.suffix.lower() if SAFE_SUFFIX.match(audio.suffix.lower()) else ".bin"
        found.append(Source("audio", f"{folder}/{job.id}.audio{suffix}.age", path=audio))
    bundle = transcript_bundle(config, job)
    found.append(Source("transcript", f"{folder}/{job.id}.transcript.json.age", data=bundle))
    return found


def archive_job(config: Config, store: JobStore, job_id: str, *, attempt: int | None = None) -> Job:
    """rendered -> archived (idempotent); see the module docstring for the order.
    ``attempt`` fences a queued run: its index and its commit hold only while the job
    is still at that attempt, and a run already stale seals nothing."""
    with archive_lock(config):
        return _archive_job(config, store, job_id, attempt)


def _archive_job(config: Config, store: JobStore, job_id: str, attempt: int | None) -> Job:
    job = store.get(job_id)
    check_attempt(job, attempt)
    if job.state == JobState.ARCHIVED:
        remove_plaintext(config, store, job)
        return job
    if job.state != JobState.RENDERED:
        raise StateError(f"job {job_id} is {job.state}, not rendered")
    keys = ArchiveKeys(config.paths.keys)
    recipients = keys.recipients(job.client)
    identities = keys.identities()
    secret = keys.index_secret()
    plan = sources(config, job)
    private_dirs(config.paths.archive, *item_folder(job))
    sealed = _seal_all(config, plan, recipients, identities)
    terms = job_terms(secret, names_in(job_dir(config, job)))
    now = time.time()
    entries = [index_entry(job.id, s.kind, s.relpath, result, now) for s, result in sealed]
    store.index_archive(job.id, entries, terms, expect=JobState.RENDERED, expect_attempts=attempt)
    store.record("archive-write", job.id, "encrypted: " + ",".join(s.kind for s, _ in sealed))
    job = store.transition(
        job.id,
        JobState.ARCHIVED,
        expect=JobState.RENDERED,
        expect_attempts=attempt,
        source_name=neutral_name(job),
    )
    remove_plaintext(config, store, job)
    store.checkpoint()  # the WAL must not keep the old row (its file name) either
    return job


def _seal_all(
    config: Config,
    plan: list[Source],
    recipients: list[Recipient],
    identities: list[Identity],
) -> list[tuple[Source, Sealed]]:
    """Encrypt every item of a job. When one fails (disk full, wrong key), those
    already written go too: not indexed yet, they would only be strays."""
    sealed: list[tuple[Source, Sealed]] = []
    try:
        for source in plan:
            with source.open() as stream:
                target = config.paths.archive / source.relpath
                sealed.append((source, seal(stream, target, recipients, identities)))
    except BaseException:
        remove_files(*(config.paths.archive / source.relpath for source, _ in sealed))
        raise
    return sealed


def archive_or_fail(
    config: Config, store: JobStore, job_id: str, *, attempt: int | None = None
) -> Job:
    """The pipeline's archive step: a fault that needs the operator (disk full, a
    wrong, unreadable or missing key) fails the job with its reason, retryable; the
    signed letter and the audio stay in the work folder. A busy archive (another
    writer) is not a fault: it is raised, and the job stays ``rendered`` for later."""
    try:
        return archive_job(config, store, job_id, attempt=attempt)
    except (*ARCHIVE_FAULTS, OSError) as exc:
        if store.get(job_id).state != JobState.RENDERED:
            raise
        if isinstance(exc, OSError):
            exc = write_failure(exc, "the archive", config.paths.archive, retry=job_id)
        elif isinstance(exc, WorkspaceError):  # the disk: say how to resume this job
            exc.hint = f"free space or fix access there, then `transcribe retry {job_id}`"
        log.warning("archiving job %s failed: %s", job_id, exc)
        reason = "archiving: " + " ".join(str(exc).split())[:400]
        return store.transition(
            job_id,
            JobState.FAILED,
            expect=JobState.RENDERED,
            expect_attempts=attempt,
            reason=reason,
        )


def neutral_name(job: Job) -> str:
    """Dropped files are often named after the patient: once the original name is in
    the encrypted bundle, the job store keeps only ``<job><ext>``."""
    suffix = Path(job.source_name).suffix.lower()
    return job.id + (suffix if re.fullmatch(r"\.[a-z0-9]{1,6}", suffix) else "")


def remove_plaintext(config: Config, store: JobStore, job: Job) -> bool:
    """Delete the job's work folder (and its audio, wherever it is) once archived.

    Only called after the ``archived`` commit (a source is removed last). Note that
    unlinking does not scrub disk blocks: full-disk encryption covers that.
    """
    if job.state != JobState.ARCHIVED:
        raise StateError(f"job {job.id} is not archived: its working files stay")
    folder = job_dir(config, job)
    removed = False
    audio = config.paths.home / job.audio_path if job.audio_path else None
    if audio is not None and audio.is_file() and folder not in audio.parents:
        audio.unlink()
        fsync_dir(audio.parent)
        removed = True
    if folder.exists():
        shutil.rmtree(folder)
        fsync_dir(folder.parent)
        removed = True
    if removed:
        store.record("plaintext-delete", job.id, "work folder and audio removed")
    return removed


def archive_pending(config: Config, store: JobStore) -> list[Job]:
    """Archive every rendered job, and finish clean-ups interrupted after a commit."""
    done = [archive_or_fail(config, store, job.id) for job in store.jobs(JobState.RENDERED)]
    for job in store.jobs(JobState.ARCHIVED):
        if job_dir(config, job).exists():
            remove_plaintext(config, store, job)
    return done
