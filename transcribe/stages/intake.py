"""Intake: turn a file dropped in ``inbox/<client>/`` into a committed job.

The rules that keep dictations from being lost or duplicated:

* a file is taken only once its size and mtime have been stable for a while
  (:class:`StabilityTracker`), so a slow upload is never cut short;
* the entry is opened once (no link followed, no FIFO waited on) and read twice: a
  hash, then a copy for the job hashed as it is written. The two must agree, or a
  sender is still writing and the file is quarantined. The job gets its own copy,
  never the inbox inode, which a sender holding it open could change after the check;
* the job row is committed *before* the file leaves the inbox, with ``inbox_path``
  set; the copy is then renamed into the job folder, the inbox file removed, and
  ``inbox_path`` cleared last. A crash anywhere in between is finished by
  :func:`finish_pending_intake` at the next start, so nothing is lost or doubled;
* names are hostile too: one that is not UTF-8, holds control characters or fills
  255 bytes is stored and shown escaped (:func:`~transcribe.stages.sidecar.display_name`);
* names are private too: senders name files after patients, so a log line names a
  job by its id and a file not yet a job by its size and inode, never by its name;
* content is deduplicated by SHA-256: a second copy becomes a ``duplicate`` job;
* anything that cannot be accepted is quarantined with a one-line reason, and the
  caller moves on to the next file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..asr import audio
from ..asr.decode import probe_file
from ..config import Config
from ..errors import InputRejected
from ..fsutil import (
    TMP_PREFIX,
    atomic_copy,
    atomic_output,
    atomic_write_json,
    fsync_dir,
    sha256_file,
    temp_prefix,
    temp_writer_gone,
)
from ..store import Job, JobState, JobStore, claim_is_stale, worker_id
from .sidecar import Sidecar, display_name, find_sidecar, read_sidecar

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
        log.warning("cannot list a folder of the inbox: %s", exc.strerror or type(exc).__name__)
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

CHANGED = "file changed while it was being taken in; drop it again once it is complete"
_HEX_PATH = "hex:"  # prefix of a stored inbox path whose name is not valid UTF-8
_CHUNK = 1 << 20


@dataclass(frozen=True)
class IntakeResult:
    job: Job | None
    outcome: str  # accepted | duplicate | quarantined | skipped


@dataclass(frozen=True)
class OpenedEntry:
    """An inbox entry opened once: every later read goes through this descriptor, so the
    name can no longer be swapped for a link or a FIFO under us."""

    fd: int
    stat: os.stat_result


def _relative(config: Config, path: Path) -> str:
    """A path as the job store keeps it: relative to the workspace. SQLite text must be
    UTF-8, yet recovery must find the very same inbox file, so a name in another
    encoding is kept as the hex of its bytes."""
    relative = os.path.relpath(path, config.paths.home)
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return _HEX_PATH + os.fsencode(relative).hex()
    return relative


def _inbox_file(config: Config, stored: str) -> Path:
    """Inverse of :func:`_relative`."""
    if stored.startswith(_HEX_PATH):
        return config.paths.home / os.fsdecode(bytes.fromhex(stored[len(_HEX_PATH) :]))
    return config.paths.home / stored


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
    """Accept, deduplicate or quarantine one stable inbox entry. Never raises for bad input.

    A fault of ours (disk full, I/O error) is not the sender's: no quarantine, the file
    stays in the inbox, for the next scan (before the job is committed) or the next
    recovery pass (after: see :func:`_complete`).
    """
    with intake_lock(config):
        if not _present(path):
            return IntakeResult(None, "skipped")  # another worker took it
        try:
            return _take_in(path, config, store)
        except FileNotFoundError:
            return IntakeResult(None, "skipped")  # renamed or removed by its sender meanwhile
        except (OSError, RuntimeError) as exc:  # RuntimeError: the decoder cannot start
            log.warning(
                "%s left in the inbox for now: %s",
                _dropped_file(path),
                " ".join(str(getattr(exc, "strerror", None) or exc).split()),
            )
            return IntakeResult(None, "skipped")


def _dropped_file(path: Path) -> str:
    """A file not yet a job, as a log line names it: by its size and inode (``find
    inbox -inum N`` finds it), never by its name, which is often a patient's. Its
    content hash would do too, but a file still being written has none yet."""
    try:
        st = path.lstat()
    except OSError:
        return "a dropped file"
    return f"a dropped file ({st.st_size} bytes, inode {st.st_ino})"


def _take_in(path: Path, config: Config, store: JobStore) -> IntakeResult:
    client = _client_of(config, path)
    try:
        sidecar, seen = _inspect(path, client, config)
    except InputRejected as exc:
        return _quarantine(path, client, config, store, str(exc))
    with _open_entry(path, seen) as opened:
        if opened is None:  # became something else since it was looked at: look again later
            return IntakeResult(None, "skipped")
        return _take_opened(path, opened, client, config, store, sidecar)


def _inspect(path: Path, client: str, config: Config) -> tuple[Sidecar, os.stat_result]:
    """Checks that need no reading: file kind, folder, client, type, size, sidecar."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise InputRejected("symbolic links are refused; drop the file itself")
    if not stat.S_ISREG(st.st_mode):
        raise InputRejected("not a regular file")
    if not client:
        raise InputRejected("file is not in a client folder (inbox/<client>/)")
    if config.client(client) is None:
        shown = display_name(client)
        raise InputRejected(f"unknown client folder '{shown}'; add [clients.{shown}] to the config")
    audio.check_extension(path)
    audio.check_size(st.st_size, config.limits)
    sidecar_path = find_sidecar(path)
    sidecar = (
        read_sidecar(sidecar_path, max_kb=config.limits.max_sidecar_kb)
        if sidecar_path
        else Sidecar()
    )
    return sidecar, st


@contextmanager
def _open_entry(path: Path, seen: os.stat_result) -> Iterator[OpenedEntry | None]:
    """Open without following a link and without blocking on a FIFO, and check it is
    still the regular file :func:`_inspect` looked at (None when it is not)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO):
            raise
        yield None  # a link, or a FIFO/socket swapped in since the lstat
        return
    try:
        st = os.fstat(fd)
        same = stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (seen.st_dev, seen.st_ino)
        yield OpenedEntry(fd, st) if same else None
    finally:
        os.close(fd)


def _take_opened(
    path: Path, opened: OpenedEntry, client: str, config: Config, store: JobStore, sidecar: Sidecar
) -> IntakeResult:
    """Probe, hash, deduplicate, then copy into the job: two reads that must agree.

    The header probe comes first, so a file refused by a cap (ten hours of silence
    is 576 MB) is never read whole.
    """
    try:
        info = probe_file(path, config.limits)  # in a capped child, like all decoding
    except InputRejected as exc:
        return _quarantine(path, client, config, store, str(exc))
    content_hash = _digest(opened)
    if content_hash is None or _changed(opened):
        return _still_changing(path)
    existing = store.find_by_hash(content_hash)
    if existing is not None:
        return _handle_known_content(path, opened, existing, client, config, store)
    staged = _stage_copy(opened, config, path.suffix.lower())
    try:
        if staged.sha256 != content_hash or _changed(opened):
            return _still_changing(path)
        return _accept(path, opened, client, config, store, sidecar, staged, info.duration_s)
    finally:
        staged.path.unlink(missing_ok=True)  # already renamed into the job when accepted


def _still_changing(path: Path) -> IntakeResult:
    """A sender is still writing (a slow upload that paused past the stability delay):
    nothing is taken, the file stays in the inbox and is looked at again once stable."""
    log.info("%s is still being written; taken once it stops changing", _dropped_file(path))
    return IntakeResult(None, "skipped")


def _digest(opened: OpenedEntry, sink: BinaryIO | None = None) -> str | None:
    """SHA-256 of the file's bytes (copied to ``sink`` on the way), or None when the
    file is no longer exactly the size it was opened at: a sender is still at it."""
    size = opened.stat.st_size
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(opened.fd, min(_CHUNK, size + 1 - offset), offset):
        offset += len(chunk)
        if offset > size:
            return None
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest() if offset == size else None


@dataclass(frozen=True)
class StagedCopy:
    """The job's private copy of the audio, not yet in the job folder."""

    path: Path
    sha256: str | None


def _stage_copy(opened: OpenedEntry, config: Config, suffix: str) -> StagedCopy:
    """Copy the audio for the job, hashing what is written (second read).

    A rename would hand the job the very inode a sender may still hold open and write
    to after the checks; a copy is the job's alone, so the stored audio always matches
    the hash the job records.
    """
    folder = config.paths.work / "jobs"
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(), suffix=suffix, dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _digest(opened, out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StagedCopy(path, digest)


def _changed(opened: OpenedEntry) -> bool:
    """Written to since it was opened (ctime moves even when a writer resets mtime)."""
    now, then = os.fstat(opened.fd), opened.stat
    return (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
        then.st_size,
        then.st_mtime_ns,
        then.st_ctime_ns,
    )


def _job_dir(config: Config, job_id: str) -> Path:
    return config.paths.work / "jobs" / job_id


def _accept(
    path: Path,
    opened: OpenedEntry,
    client: str,
    config: Config,
    store: JobStore,
    sidecar: Sidecar,
    staged: StagedCopy,
    duration_s: float,
) -> IntakeResult:
    client_cfg = config.client(client)
    assert client_cfg is not None
    job_id = store.unused_job_id()
    target = _job_dir(config, job_id) / f"audio{path.suffix.lower()}"
    job = store.insert_job(
        id=job_id,
        client=client,
        source_name=display_name(path.name),
        content_hash=staged.sha256,
        inbox_path=_relative(config, path),
        audio_path=_relative(config, target),
        size_bytes=opened.stat.st_size,
        duration_s=round(duration_s, 3),
        language=sidecar.language
        or client_cfg.author_language.get(sidecar.author or "")
        or client_cfg.language,
        priority=sidecar.priority,
        author=sidecar.author,
        document_type=sidecar.document_type,
        claimed_by=worker_id(),
        claimed_at=time.time(),
    )
    job = _complete(config, store, job, sidecar, staged=staged.path, taken=opened.stat)
    log.info(
        "job %s: taken in for client %s (%d bytes), %s", job.id, client, job.size_bytes, job.state
    )
    return IntakeResult(job, "accepted")


def _handle_known_content(
    path: Path, opened: OpenedEntry, existing: Job, client: str, config: Config, store: JobStore
) -> IntakeResult:
    """Same bytes as a job we hold: an unfinished intake of ours, or a real duplicate."""
    if existing.inbox_path == _relative(config, path):
        return IntakeResult(existing, "skipped")  # intake in progress; recovery finishes it
    job = store.insert_job(
        id=store.unused_job_id(),
        client=client,
        state=JobState.DUPLICATE,
        source_name=display_name(path.name),
        content_hash=existing.content_hash,
        duplicate_of=existing.id,
        inbox_path=_relative(config, path),
        size_bytes=opened.stat.st_size,
        reason=f"same content as job {existing.id}",
        claimed_by=worker_id(),
        claimed_at=time.time(),
    )
    job = _complete(config, store, job, taken=opened.stat)
    log.info("job %s: same content as job %s, kept as a duplicate", job.id, existing.id)
    return IntakeResult(job, "duplicate")


def _quarantine(
    path: Path,
    client: str,
    config: Config,
    store: JobStore,
    reason: str,
) -> IntakeResult:
    """Record the rejection, then move the entry (and its sidecar) out of the inbox."""
    job_id = store.unused_job_id()
    target = config.paths.quarantine / job_id / safe_name(path.name)
    job = store.insert_job(
        id=job_id,
        client=display_name(client) or "-",
        state=JobState.QUARANTINED,
        source_name=display_name(path.name),
        inbox_path=_relative(config, path),
        audio_path=_relative(config, target),
        reason=reason,
        claimed_by=worker_id(),
        claimed_at=time.time(),
    )
    # the reason may quote the file's name or a sidecar's value: it stays in the job
    log.warning("job %s: quarantined (`transcribe show %s` gives the reason)", job_id, job_id)
    return IntakeResult(_complete(config, store, job), "quarantined")


def _complete(
    config: Config,
    store: JobStore,
    job: Job,
    sidecar: Sidecar | None = None,
    *,
    staged: Path | None = None,
    taken: os.stat_result | None = None,
) -> Job:
    """:func:`complete_intake` right after the commit. On a fault of ours (disk full,
    I/O error) the claim is let go, so the next recovery pass (periodic in the watcher)
    finishes the job from the inbox file, which is still there; this pass moves on."""
    try:
        return complete_intake(config, store, job, sidecar, staged=staged, taken=taken)
    except OSError:
        store.update(job.id, claimed_by=None, claimed_at=None)
        raise


def complete_intake(
    config: Config,
    store: JobStore,
    job: Job,
    sidecar: Sidecar | None = None,
    *,
    staged: Path | None = None,
    taken: os.stat_result | None = None,
) -> Job:
    """Second half of intake, after the job is committed; safe to repeat after a crash.

    Puts the audio where the job says (work folder, quarantine), drops the inbox entry,
    deals with the sidecar, and only then clears ``inbox_path``. ``staged`` is the
    job's copy made before the commit; ``taken`` the inbox file it was made from, so
    a file dropped again under the same name meanwhile is left for the next scan.
    """
    assert job.inbox_path is not None
    source = _inbox_file(config, job.inbox_path)
    target = config.paths.home / job.audio_path if job.audio_path else None
    sidecar_path = find_sidecar(source) if job.client != "-" else None
    if target is not None:
        target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        if job.state == JobState.RECEIVED:
            _write_job_sidecar(config, target.parent, sidecar, sidecar_path)
            job = _install_audio(store, job, source, target, staged)
        elif not target.exists() and _present(source):
            _move_into(source, target)
    if _present(source) and _is_the_same_file(source, job, taken):
        _discard(source)
    if sidecar_path is not None and sidecar_path.exists():
        if job.state == JobState.QUARANTINED and target is not None:
            _move_into(sidecar_path, target.parent / safe_name(sidecar_path.name))
        else:
            _discard(sidecar_path)
    store.update(job.id, inbox_path=None, claimed_by=None, claimed_at=None)
    return store.get(job.id)


def _install_audio(
    store: JobStore, job: Job, source: Path, target: Path, staged: Path | None
) -> Job:
    """The job's audio into its folder: the staged copy, or after a crash between the
    commit and this step, a fresh copy from the inbox that must still match the hash."""
    if target.exists():
        return job
    if staged is not None:
        os.rename(staged, target)
        fsync_dir(target.parent)
        fsync_dir(staged.parent)
        return job
    if not _present(source):
        return job
    with _open_entry(source, source.lstat()) as opened:
        if opened is None:
            return job
        with atomic_output(target) as out:
            copied = _digest(opened, out.file)
    if copied == job.content_hash:
        return job
    actual = sha256_file(target)  # what the job now holds, so the two always agree
    return store.transition(job.id, JobState.QUARANTINED, reason=CHANGED, content_hash=actual)


def _is_the_same_file(source: Path, job: Job, taken: os.stat_result | None) -> bool:
    """May the inbox entry go? Only the file this intake read: same inode when we hold
    its stat, same bytes when recovering. Anything else is new input, kept."""
    if taken is not None:
        try:
            now = source.lstat()
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (taken.st_dev, taken.st_ino)
    if job.content_hash is None:
        return False  # a quarantined entry was moved already: this one is new
    with _open_entry(source, source.lstat()) as opened:
        return opened is not None and _digest(opened) == job.content_hash


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
    """Remove temporary files and folders a killed process left behind.

    A name made by :func:`~transcribe.fsutil.temp_prefix` says its writer: it goes as
    soon as that process is gone, and never while it lives (a warm LibreOffice's
    scratch folder lives as long as a batch). Any other temporary name goes once it is
    old enough to be nobody's. The inbox is left alone: it belongs to the senders.
    """
    removed: set[Path] = set()
    cutoff = time.time() - older_than_s
    for tmp in _temp_entries(config):
        if removed.intersection(tmp.parents):
            continue  # inside a folder removed just before
        try:
            gone = temp_writer_gone(tmp.name)
            if not gone and (gone is not None or tmp.lstat().st_mtime > cutoff):
                continue
            shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else tmp.unlink()
        except FileNotFoundError:
            continue
        removed.add(tmp)
    return sorted(removed)


def _temp_entries(config: Config) -> list[Path]:
    """Every temporary name where the pipeline writes: the work, quarantine, archive
    and reports folders, and the workspace's top level (learning store, settings)."""
    home = config.paths.home
    found = set(home.glob(f"{TMP_PREFIX}*"))
    for root in (config.paths.work, config.paths.quarantine, config.paths.archive):
        found.update(root.rglob(f"{TMP_PREFIX}*"))
    found.update((home / "reports").rglob(f"{TMP_PREFIX}*"))
    return sorted(found)
