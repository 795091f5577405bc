"""The embedded mode's file store: owner-only folders on this machine.

It keeps today's behaviour: plain files in owner-only folders (the machine's disk is
the secretariat's own), archive items as age files. Each area of the key layout maps
to one folder, so the workspace keeps its shape: ``audio/`` and ``jobs/`` under
``work/``, ``archive/`` where ``[paths] archive`` says. Every write is atomic (a
temporary file in the same folder, fsync, rename, fsync of the folder), every file
is 0600 and every folder 0700, and a key never leads outside its folder, even through
a symbolic link planted on the way.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from ..errors import FileStoreError
from ..fsutil import TMP_PREFIX, atomic_output, atomic_write_bytes, fsync_dir
from .contract import (
    AREAS,
    FileStore,
    check_key,
    check_plain_key,
    check_prefix,
    content_hash,
    missing,
)
from .sealing import require_age_file

_CHUNK = 1 << 20


def workspace_areas(work: Path, archive: Path) -> dict[str, Path]:
    """Where each area lives in a workspace (``config.paths``) today."""
    return {"audio": work / "audio", "jobs": work / "jobs", "archive": archive}


class LocalFileStore(FileStore):
    """Objects are files: ``<area folder>/<rest of the key>``."""

    def __init__(self, areas: Mapping[str, Path], scratch_root: Path) -> None:
        super().__init__(scratch_root)
        unknown = set(AREAS) - set(areas)
        if unknown:
            raise FileStoreError(f"no folder given for area {sorted(unknown)[0]!r}")
        self.areas = {name: Path(folder) for name, folder in areas.items()}

    def _path(self, key: str) -> Path:
        """The file of ``key``; refuses a symbolic link anywhere below the area folder."""
        area, rest = check_key(key).split("/", 1)
        base = self.areas[area]
        path = base / rest
        probe = base
        for part in rest.split("/"):
            probe = probe / part
            if probe.is_symlink():
                raise FileStoreError(f"refused key {key!r}: {probe} is a symbolic link")
        return path

    def _folder_for(self, path: Path) -> None:
        """Create the missing folders of ``path`` owner-only, each entry made durable."""
        missing_dirs = []
        folder = path.parent
        while not folder.is_dir():
            missing_dirs.append(folder)
            folder = folder.parent
        for folder in reversed(missing_dirs):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
            fsync_dir(folder.parent)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(check_plain_key(key))
        self._folder_for(target)
        self._copy_in(path, target, None, key)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(check_plain_key(key))
        self._folder_for(target)
        atomic_write_bytes(target, data, mode=0o600)

    def put_sealed(self, key: str, path: Path) -> None:
        target = self._path(key)
        require_age_file(path, key)
        self._folder_for(target)
        self._copy_in(path, target, None, key)

    def _put_checked(self, key: str, path: Path, sha256: str) -> None:
        target = self._path(key)
        self._folder_for(target)
        self._copy_in(path, target, sha256, key)

    def _copy_in(self, source: Path, target: Path, sha256: str | None, key: str) -> None:
        """Copy through a temporary file beside ``target``; with ``sha256``, refuse (and
        leave nothing) unless the bytes copied hash to it."""
        digest = hashlib.sha256()
        with atomic_output(target, mode=0o600) as staged, open(source, "rb") as src:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                digest.update(chunk)
                staged.file.write(chunk)
            if sha256 is not None and digest.hexdigest() != sha256:
                raise FileStoreError(f"{source} changed while it was stored as {key!r}")

    def _open(self, key: str) -> int:
        """A descriptor of the object's file: a folder or a link there is no object."""
        try:
            fd = os.open(self._path(key), os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            raise missing(key) from None
        except OSError as exc:
            raise FileStoreError(f"cannot read {key!r}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise missing(key)
        return fd

    def get_file(self, key: str, dest: Path) -> None:
        expected = content_hash(key)
        digest = hashlib.sha256()
        with open(self._open(key), "rb") as src, atomic_output(dest, mode=0o600) as staged:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                digest.update(chunk)
                staged.file.write(chunk)
            _check_content(key, expected, digest.hexdigest())

    def get_bytes(self, key: str) -> bytes:
        with open(self._open(key), "rb") as src:
            data = src.read()
        _check_content(key, content_hash(key), hashlib.sha256(data).hexdigest())
        return data

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return path.is_file() and not path.is_symlink()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        keys = []
        for area, base in self.areas.items():
            if not (f"{area}/".startswith(prefix) or prefix.startswith(f"{area}/")):
                continue
            for folder, dirs, files in os.walk(base):  # os.walk does not follow links
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                rel = Path(folder).relative_to(base).as_posix()
                for name in files:
                    if name.startswith((".", TMP_PREFIX)):
                        continue
                    key = f"{area}/{name}" if rel == "." else f"{area}/{rel}/{name}"
                    if key.startswith(prefix) and not Path(folder, name).is_symlink():
                        keys.append(key)
        return sorted(keys)


def _check_content(key: str, expected: str | None, actual: str) -> None:
    """A content-addressed object that no longer hashes to its name is damaged."""
    if expected is not None and actual != expected:
        raise FileStoreError(f"{key!r} is damaged: its content no longer matches its hash")
