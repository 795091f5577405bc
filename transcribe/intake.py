"""Intake: turn a file dropped in ``inbox/<client>/`` into a committed job.

The rules that keep dictations from being lost or duplicated:

* a file is taken only once its size and mtime have been stable for a while
  (:class:`StabilityTracker`), so a slow upload is never cut short;
* the job row is committed *before* the file leaves the inbox, with ``inbox_path``
  set; the file is then moved (rename, or copy+fsync+unlink across filesystems);
  ``inbox_path`` is cleared last. A crash anywhere in between is finished by
  :func:`finish_pending_intake` at the next start, so nothing is lost or doubled;
* content is deduplicated by SHA-256: a second copy becomes a ``duplicate`` job;
* anything that cannot be accepted is quarantined with a one-line reason, and the
  caller moves on to the next file.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import audio
from .config import Config
from .errors import InputRejected
from .fsutil import TMP_PREFIX, atomic_copy, atomic_write_json, fsync_dir, sha256_file
from .sidecar import Sidecar, find_sidecar, read_sidecar
from .store import Job, JobState, JobStore, claim_is_stale, new_job_id, worker_id

log = logging.getLogger(__name__)

IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".download", ".swp")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# ----------------------------------------------------------------- what to look at


def is_ignored(path: Path) -> bool:
    """Files a sender is still writing, or that are not dictations at all."""
    name = path.name
    return (
        name.startswith((".", "~$"))
        or name.lower().endswith(IGNORED_SUFFIXES)
        or name.endswith("~")
    )


def is_sidecar(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def scan_inbox(inbox: Path) -> Iterator[Path]:
    """Every candidate in ``inbox/`` and ``inbox/<client>/``, without following links."""
    try:
        top = sorted(inbox.iterdir())
    except FileNotFoundError:
        return
    for entry in top:
        if is_ignored(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _scan_client_folder(entry)
        else:
            yield entry


def _scan_client_folder(folder: Path) -> Iterator[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc)
        return
    for entry in entries:
        if is_ignored(entry) or (is_sidecar(entry) and not entry.is_symlink()):
            continue
        yield entry


class StabilityTracker:
    """Says when a file has stopped changing: same size and mtime for ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._seen: dict[Path, tuple[tuple[int, int], float]] = {}

    def observe(self, path: Path, now: float | None = None) -> bool:
        """Record the file's current signature; True once it has been stable long enough.

        A file already untouched for ``delay`` seconds when first seen (dropped while
        we were down, or before a ``--once`` run) is ready at once.
        """
        now = time.monotonic() if now is None else now
        try:
            st = path.lstat()
        except FileNotFoundError:
            self._seen.pop(path, None)
            return False
        signature = (st.st_size, st.st_mtime_ns)
        previous = self._seen.get(path)
        if previous is None or previous[0] != signature:
            self._seen[path] = (signature, now)
            return previous is None and time.time() - st.st_mtime >= self.delay
        return now - previous[1] >= self.delay

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)

    def pending(self) -> list[Path]:
        return list(self._seen)


def is_ready(path: Path, tracker: StabilityTracker, now: float | None = None) -> bool:
    """The audio and its sidecar, if any, have both stopped changing."""
    ready = tracker.observe(path, now)
    if path.is_symlink() or not path.exists():
        return ready
    sidecar = find_sidecar(path)
    if sidecar is not None:
        ready = tracker.observe(sidecar, now) and ready
    return ready


# ----------------------------------------------------------------- taking a file in


@dataclass(frozen=True)
class IntakeResult:
    job: Job | None
    outcome: str  # accepted | duplicate | quarantined | skipped


def _relative(config: Config, path: Path) -> str:
    return os.path.relpath(path, config.paths.home)


def _client_of(config: Config, path: Path) -> str:
    parent = path.parent
    return "" if parent == config.paths.inbox else parent.name


def safe_name(name: str) -> str:
    """A file name that cannot escape a folder or break a terminal."""
    cleaned = SAFE_NAME.sub("_", name).strip("._") or "file"
    return cleaned[-120:]


@contextmanager
def intake_lock(config: Config) -> Iterator[None]:
    """One intake at a time per workspace: two watchers and a batch may all see the same
    file; whoever comes second finds it gone (or already recorded) and skips it."""
    lock = config.paths.work / ".intake.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def take_in(path: Path, config: Config, store: JobStore) -> IntakeResult:
    """Accept, deduplicate or quarantine one stable inbox entry. Never raises for bad input."""
    with intake_lock(config):
        if not _present(path):
            return IntakeResult(None, "skipped")  # another worker took it
        return _take_in(path, config, store)


def _take_in(path: Path, config: Config, store: JobStore) -> IntakeResult:
    client = _client_of(config, path)
    try:
        sidecar, content_hash, size = _inspect(path, client, config)
    except InputRejected as exc:
        return _quarantine(path, client, config, store, str(exc))
    existing = store.find_by_hash(content_hash)
    if existing is not None:
        return _handle_known_content(path, existing, client, config, store)
    try:
        info = audio.probe(path, config.limits)
    except InputRejected as exc:
        return _quarantine(path, client, config, store, str(exc), content_hash=content_hash)
    return _accept(path, client, config, store, sidecar, content_hash, size, info.duration_s)


def _inspect(path: Path, client: str, config: Config) -> tuple[Sidecar, str, int]:
    """Checks that need no decoding: file kind, folder, client, type, size, sidecar."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise InputRejected("symbolic links are refused; drop the file itself")
    if not stat.S_ISREG(st.st_mode):
        raise InputRejected("not a regular file")
    if not client:
        raise InputRejected("file is not in a client folder (inbox/<client>/)")
    if config.client(client) is None:
        raise InputRejected(
            f"unknown client folder {client!r}; add [clients.{client}] to the config"
        )
    audio.check_extension(path)
    audio.check_size(st.st_size, config.limits)
    sidecar_path = find_sidecar(path)
    sidecar = (
        read_sidecar(sidecar_path, max_kb=config.limits.max_sidecar_kb)
        if sidecar_path
        else Sidecar()
    )
    return sidecar, sha256_file(path), st.st_size


def _job_dir(config: Config, job_id: str) -> Path:
    return config.paths.work / "jobs" / job_id


def _accept(
    path: Path,
    client: str,
    config: Config,
    store: JobStore,
    sidecar: Sidecar,
    content_hash: str,
    size: int,
    duration_s: float,
) -> IntakeResult:
    client_cfg = config.client(client)
    assert client_cfg is not None
    job_id = new_job_id()
    target = _job_dir(config, job_id) / f"audio{path.suffix.lower()}"
    job = store.insert_job(
        id=job_id,
        client=client,
        source_name=path.name,
        content_hash=content_hash,
        inbox_path=_relative(config, path),
        audio_path=_relative(config, target),
        size_bytes=size,
        duration_s=round(duration_s, 3),
        language=sidecar.language or client_cfg.language,
        priority=sidecar.priority,
        author=sidecar.author,
        document_type=sidecar.document_type,
        claimed_by=worker_id(),
        claimed_at=time.time(),
    )
    job = complete_intake(config, store, job, sidecar)
    if sha256_file(target) != content_hash:
        reason = "file changed while it was being taken in"
        return IntakeResult(
            store.transition(job_id, JobState.QUARANTINED, reason=reason), "quarantined"
        )
    return IntakeResult(job, "accepted")


def _handle_known_content(
    path: Path, existing: Job, client: str, config: Config, store: JobStore
) -> IntakeResult:
    """Same bytes as a job we hold: an unfinished intake of ours, or a real duplicate."""
    if existing.inbox_path == _relative(config, path):
        return IntakeResult(existing, "skipped")  # intake in progress; recovery finishes it
    job = store.insert_job(
        id=new_job_id(),
        client=client,
        state=JobState.DUPLICATE,
        source_name=path.name,
        content_hash=existing.content_hash,
        duplicate_of=existing.id,
        inbox_path=_relative(config, path),
        size_bytes=path.stat().st_size,
        reason=f"same content as job {existing.id}",
        claimed_by=worker_id(),
        claimed_at=time.time(),
    )
    return IntakeResult(complete_intake(config, store, job), "duplicate")


def _quarantine(
    path: Path,
    client: str,
    config: Config,
    store: JobStore,
    reason: str,
    *,
    content_hash: str | None = None,
) -> IntakeResult:
    """Record the rejection, then move the entry (and its sidecar) out of the inbox."""
    job_id = new_job_id()
    target = config.paths.quarantine / job_id / safe_name(path.name)
    log.warning("quarantined %s: %s", path.name, reason)
    job = store.insert_job(
        id=job_id,
        client=client or "-",
        state=JobState.QUARANTINED,
        source_name=path.name,
        content_hash=content_hash,
        inbox_path=_relative(config, path),
        audio_path=_relative(config, target),
        reason=reason,
        claimed_by=worker_id(),
        claimed_at=time.time(),
    )
    return IntakeResult(complete_intake(config, store, job), "quarantined")


def complete_intake(
    config: Config, store: JobStore, job: Job, sidecar: Sidecar | None = None
) -> Job:
    """Second half of intake, after the job is committed; safe to repeat after a crash.

    Moves the inbox entry to where the job says (work folder, quarantine) or drops it
    (duplicates), deals with the sidecar, and only then clears ``inbox_path``.
    """
    assert job.inbox_path is not None
    source = config.paths.home / job.inbox_path
    target = config.paths.home / job.audio_path if job.audio_path else None
    sidecar_path = find_sidecar(source) if job.client != "-" else None
    if target is not None:
        target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        if job.state == JobState.RECEIVED:
            _write_job_sidecar(config, target.parent, sidecar, sidecar_path)
    if target is not None and not target.exists() and _present(source):
        _move_into(source, target)
    elif _present(source):
        _discard(source)
    if sidecar_path is not None and sidecar_path.exists():
        if job.state == JobState.QUARANTINED and target is not None:
            _move_into(sidecar_path, target.parent / safe_name(sidecar_path.name))
        else:
            _discard(sidecar_path)
    store.update(job.id, inbox_path=None, claimed_by=None, claimed_at=None)
    return store.get(job.id)


def _write_job_sidecar(
    config: Config, job_dir: Path, sidecar: Sidecar | None, inbox_sidecar: Path | None
) -> None:
    """Patient and matter stay in this file, never in the job store."""
    if (job_dir / "sidecar.json").exists():
        return
    if sidecar is None and inbox_sidecar is not None:
        try:
            sidecar = read_sidecar(inbox_sidecar, max_kb=config.limits.max_sidecar_kb)
        except InputRejected:
            sidecar = None
    atomic_write_json(job_dir / "sidecar.json", (sidecar or Sidecar()).as_dict())


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


# ----------------------------------------------------------------- moving files


def _move_into(source: Path, target: Path) -> None:
    """Rename when possible (atomic); across filesystems copy, fsync, then unlink."""
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        if source.is_symlink() or not source.is_file():
            source.unlink()  # a link or a FIFO carries no content worth copying
        else:
            atomic_copy(source, target)
            source.unlink()
    fsync_dir(target.parent)
    fsync_dir(source.parent)


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


# ----------------------------------------------------------------- crash recovery


def finish_pending_intake(config: Config, store: JobStore, *, timeout_s: float) -> list[str]:
    """Complete intakes a dead process left half-done (job committed, file not yet moved)."""
    finished = []
    for job in store.jobs():
        if job.inbox_path is None:
            continue
        if not claim_is_stale(job.claimed_by, job.claimed_at, timeout_s):
            continue
        complete_intake(config, store, job)
        finished.append(job.id)
    return finished


def sweep_temp_files(config: Config, *, older_than_s: float = 600.0) -> list[Path]:
    """Remove temporary files a crashed write left behind (old enough to be nobody's)."""
    removed: list[Path] = []
    cutoff = time.time() - older_than_s
    for root in (config.paths.work, config.paths.quarantine, config.paths.archive):
        for tmp in root.rglob(f"{TMP_PREFIX}*"):
            try:
                if tmp.lstat().st_mtime > cutoff:
                    continue
                shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else tmp.unlink()
            except FileNotFoundError:
                continue
            removed.append(tmp)
    return removed
