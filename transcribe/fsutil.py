"""Small filesystem helpers that make every write crash-safe.

Crash-safety rule of the project: a reader sees either the old file or the complete
new one, never a torn write. So every write goes to a temporary file in the same
folder, is fsynced, renamed over the target, and the folder is fsynced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


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
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=target.parent)
    staged = Staged(Path(tmp_name), os.fdopen(fd, "wb"))
    try:
        yield staged
        staged.close()
        os.chmod(staged.path, mode)
        os.replace(staged.path, target)
    except BaseException:
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
