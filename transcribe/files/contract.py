"""The one interface every file of a job goes through, and the layout of its keys.

Keys are relative POSIX paths, built by the program, never by a sender:

* ``audio/<sha256>`` — a dictation's audio, under the SHA-256 of its plaintext
  (:meth:`FileStore.put_content`), stored *before* the commit that refers to it: an
  orphan object is harmless, a row never points at nothing;
* ``jobs/<job>/<name>`` — a job's work files (``transcript.json``, ``draft.json``,
  ``approved.json``, ``letter.pdf``...);
* ``archive/<client>/<yyyy>/<mm>/<item>.age`` — archive items, already age files
  sealed to the archive key, stored byte for byte (:meth:`FileStore.put_sealed`) so
  that ``age -d -i keys/archive.key`` opens them wherever they are.

Every store gives back exactly what it was given, and a reader sees an object whole
or not at all. A key is checked before anything is touched: one ASCII word per
component (letters, digits, ``._-``, not starting with a dot), so no ``..``, absolute
path, backslash, NUL, hidden or temporary name can reach a folder or a bucket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from ..errors import FileMissing, FileStoreError
from ..fsutil import sha256_file, temp_prefix, temp_writer_gone

log = logging.getLogger(__name__)

AREAS = ("audio", "jobs", "archive")
SEALED_AREA = "archive"
MAX_KEY_BYTES = 512
_COMPONENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TASK = re.compile(r"[^A-Za-z0-9_-]+")


def check_key(key: str) -> str:
    """``key`` if it is a well-formed key of a known area, else FileStoreError."""
    if not isinstance(key, str) or not key:
        raise FileStoreError(f"refused key {key!r}: empty")
    parts = key.split("/")
    problem = None
    if len(key.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
        problem = f"longer than {MAX_KEY_BYTES} bytes"
    elif parts[0] not in AREAS:
        problem = f"its first folder must be one of {', '.join(AREAS)}"
    elif len(parts) < 2:
        problem = "it names a folder, not an object"
    elif (bad := next((p for p in parts if not _COMPONENT.match(p)), None)) is not None:
        problem = f"{bad!r} is not a plain name (letters, digits, '._-', no leading dot)"
    if problem:
        raise FileStoreError(f"refused key {key!r}: {problem}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: "" (everything), an area, or a key's beginning."""
    if prefix == "" or prefix.rstrip("/") in AREAS:
        return prefix
    check_key(prefix.rstrip("/") if prefix.endswith("/") else prefix)
    return prefix


def content_key(sha256: str) -> str:
    return f"audio/{sha256}"


def content_hash(key: str) -> str | None:
    """The SHA-256 a content-addressed key promises, checked on every read."""
    area, _, name = key.partition("/")
    return name if area == "audio" and _SHA256.match(name) else None


def check_plain_key(key: str) -> str:
    """Archive items must arrive sealed: an ordinary put there would file a document
    that the archive key cannot open (or, locally, one in clear)."""
    check_key(key)
    if key.split("/", 1)[0] == SEALED_AREA:
        raise FileStoreError(
            f"refused key {key!r}: archive items are stored already sealed (put_sealed)"
        )
    return key


class FileStore(ABC):
    """Where the files of jobs live: local folders (embedded) or S3 (platform).

    ``scratch_root`` is a local folder for the copies a task works on; each task's
    copies go in a private folder of its own that is removed when the task ends.
    """

    def __init__(self, scratch_root: Path) -> None:
        self.scratch_root = scratch_root

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key`` (replacing any older object)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing any older object)."""

    @abstractmethod
    def put_sealed(self, key: str, path: Path) -> None:
        """Store an age file byte for byte (no second encryption): archive items."""

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> None:
        """Write the object to ``dest`` atomically, owner-only; FileMissing if absent."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's content; FileMissing if absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Is there an object under ``key``? (Unreachable storage is an error, not False.)"""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting what is not there is not an error (re-runs)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix`` (string prefix, as S3 does), sorted."""

    def put_content(self, path: Path) -> str:
        """Store audio under ``audio/<sha256 of its plaintext>`` and return that key.

        Idempotent: content already stored is not sent again. The hash is taken
        again while storing, so a file changed under our feet is refused, not filed
        under a hash that does not match it.
        """
        digest = sha256_file(path)
        key = content_key(digest)
        if self.exists(key):
            return key
        self._put_checked(key, path, digest)
        return key

    @abstractmethod
    def _put_checked(self, key: str, path: Path, sha256: str) -> None:
        """``put_file`` that fails, storing nothing, unless the bytes hash to ``sha256``."""

    @contextlib.contextmanager
    def scratch(self, task: str = "task") -> Iterator[Path]:
        """A private (0700) local folder for one task, removed when it ends, even on error.

        Its name carries this process's id, so :meth:`sweep_scratch` can remove what a
        killed worker left without touching a live one's.
        """
        self.scratch_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        label = _TASK.sub("-", task)[:40] or "task"
        folder = Path(tempfile.mkdtemp(prefix=f"{temp_prefix()}{label}-", dir=self.scratch_root))
        os.chmod(folder, 0o700)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            if folder.exists():
                log.warning("scratch folder %s could not be removed", folder)

    def sweep_scratch(self) -> list[Path]:
        """Remove scratch folders whose process is gone (a crashed task); return them."""
        removed: list[Path] = []
        if not self.scratch_root.is_dir():
            return removed
        for entry in sorted(self.scratch_root.iterdir()):
            if temp_writer_gone(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed


def missing(key: str) -> FileMissing:
    return FileMissing(f"no object {key!r} in the file store")
