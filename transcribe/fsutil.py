"""Small filesystem helpers that make every write crash-safe.

Crash-safety rule of the project: a reader sees either the old file or the complete
new one, never a torn write. So every write goes to a temporary file in the same
folder, is fsynced, renamed over the target, and the folder is fsynced.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from .errors import WorkspaceError

TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20
_TAGGED = re.compile(r"^\.tmp-(\d+)\.([0-9a-f]{8})-")


@functools.cache
def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_prefix() -> str:
    """``.tmp-<pid>.<host>-``: every temporary name says which process writes it, so
    recovery removes what a killed process left at once, and never what a live one is
    still writing (see :func:`temp_writer_gone`)."""
    return f"{TMP_PREFIX}{os.getpid()}.{_host_tag()}-"


def temp_writer_gone(name: str) -> bool | None:
    """For a name made with :func:`temp_prefix` on this host: is its writer gone?
    None when the name does not say (made elsewhere, or by older code)."""
    match = _TAGGED.match(name)
    if match is None or match.group(2) != _host_tag():
        return None
    return not process_alive(int(match.group(1)))


def process_alive(pid: int) -> bool:
    """Is ``pid`` running? A zombie (dead, not yet reaped by its parent) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask: kill() said it exists
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staged:
    """A temporary file beside its target, written through ``file``.

    ``close()`` flushes, fsyncs and closes it, so the content can be checked by
    reading ``path`` before :func:`atomic_output` puts it in place.
    """

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self.file = file

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()


@contextmanager
def atomic_output(target: Path, *, mode: int = 0o600, suffix: str = "") -> Iterator[Staged]:
    """Write ``target`` through a temporary file in its folder: on success it is
    fsynced and renamed over ``target`` (and the folder fsynced); on any error, or an
    exception raised by the caller's checks, the temporary file is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(), suffix=suffix, dir=target.parent)
    staged = Staged(Path(tmp_name), os.fdopen(fd, "wb"))
    try:
        yield staged
        staged.close()
        os.chmod(staged.path, mode)
        os.replace(staged.path, target)
    except BaseException:
        # On a full disk closing flushes the buffer and fails again: the temporary
        # file must still go, and the caller must see the first error, not this one.
        with contextlib.suppress(OSError):
            staged.file.close()
        staged.path.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``target`` so that a crash leaves the old file or the new one."""
    with atomic_output(target, mode=mode) as staged:
        staged.file.write(data)


def atomic_write_text(target: Path, text: str, *, mode: int = 0o600) -> None:
    """UTF-8 text flavour of :func:`atomic_write_bytes`."""
    atomic_write_bytes(target, text.encode("utf-8"), mode=mode)


def atomic_write_json(target: Path, payload: Any, *, mode: int = 0o600) -> None:
    """Write JSON readably (indented, UTF-8 kept) and atomically."""
    text = json.dumps(payload, ensure_ascii=False, indent=2) + "\n"
    atomic_write_text(target, text, mode=mode)


def atomic_copy(source: Path, target: Path, *, mode: int = 0o600) -> None:
    """Copy a possibly large file without ever exposing a partial ``target``."""
    with atomic_output(target, mode=mode) as staged, open(source, "rb") as src:
        shutil.copyfileobj(src, staged.file, _CHUNK)


def sha256_file(path: Path) -> str:
    """Content hash used for deduplication and integrity checks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remove_files(*paths: Path) -> None:
    """Best-effort clean-up after a failed stage: a lone half of a result is not kept."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


_WRITE_FAULTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EIO: "input/output error (failing disk?)",
}


def write_failure(
    exc: OSError, what: str, where: Path, *, retry: str | None = None
) -> WorkspaceError:
    """An OSError met while writing a stage result, as one line the operator can act on.

    Disk full, quota, read-only or failing disks are resource faults, not bad input:
    the job is failed (retryable), so the message says where space or access is
    missing and, given ``retry`` (a job id), how to resume once it is fixed.
    """
    fault = _WRITE_FAULTS.get(exc.errno or 0) or " ".join(str(exc.strerror or exc).split())
    then = f"then `transcribe retry {retry}`" if retry else "then run the step again"
    return WorkspaceError(
        f"cannot write {what} in {where}: {fault}", hint=f"free space or fix access there, {then}"
    )
