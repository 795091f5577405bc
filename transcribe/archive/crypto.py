"""age encryption of archive items, streamed, verified before it becomes visible.

The write path of every item: encrypt to a temporary file beside the target, fsync,
decrypt it again and compare the plaintext's SHA-256 and size with what was read,
only then rename it into place and fsync the folder. A reader (or a crash) sees the
previous item or the complete, verified new one. Plaintext is only ever streamed
through memory (and, for key rotation, a kernel pipe): never written to disk.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyrage

from ..errors import ArchiveError
from ..fsutil import atomic_output, fsync_dir, sha256_file, write_failure
from ..keys import Identity, Recipient


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int


@dataclass(frozen=True)
class Sealed:
    """What the index keeps about one encrypted item: both sides' hashes and sizes."""

    plain: Digest
    cipher: Digest


class _HashingReader:
    """Feeds pyrage from a stream while hashing what it reads."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def digest(self) -> Digest:
        return Digest(self.hash.hexdigest(), self.size)


class _HashingWriter:
    """Receives pyrage's output, hashes it, and passes it on (or drops it).

    pyrage wraps an error of the sink into its own Encrypt/DecryptError; the original
    is kept in ``failure`` so a full disk is reported as such, not as a damaged item.
    """

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0
        self.failure: OSError | None = None

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.sink is not None:
            try:
                self.sink.write(data)
            except OSError as exc:
                self.failure = exc
                raise
        return len(data)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()

    def digest(self) -> Digest:
        return Digest(self.hash.hexdigest(), self.size)


def describe_decrypt_error(exc: BaseException) -> str:
    """age's errors in the operator's words."""
    text = str(exc)
    if "No matching keys" in text:
        return "it is not encrypted to the archive key in keys/ (wrong key?)"
    return f"it is truncated or altered (age: {text})"


def decrypt_to(path: Path, identities: Sequence[Identity], sink: BinaryIO | None) -> Digest:
    """Decrypt ``path`` into ``sink`` (None: only hash it). A failure of ``path`` is an
    ArchiveError; one of ``sink`` (disk full) is its own OSError, for the caller."""
    writer = _HashingWriter(sink)
    try:
        with open(path, "rb") as source:
            pyrage.decrypt_io(source, writer, list(identities))
    except FileNotFoundError:
        raise ArchiveError(f"{path} is missing") from None
    except (pyrage.DecryptError, OSError) as exc:
        if writer.failure is not None:
            raise writer.failure from None
        if isinstance(exc, OSError) and exc.errno is not None:
            raise ArchiveError(f"cannot read {path}: {exc.strerror}") from None
        raise ArchiveError(f"cannot decrypt {path}: {describe_decrypt_error(exc)}") from None
    return writer.digest()


def cipher_problem(path: Path, expected: Digest) -> str | None:
    """Check the encrypted file against the index without any key: None if it matches."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size < expected.size:
        return f"truncated ({size} of {expected.size} bytes)"
    if size > expected.size:
        return f"altered ({size - expected.size} bytes longer than archived)"
    if sha256_file(path) != expected.sha256:
        return "altered (its content no longer matches the archive index)"
    return None


def private_dirs(root: Path, *parts: str) -> Path:
    """Create ``root/part/...`` owner-only, making each new folder entry durable."""
    folder = root
    for part in parts:
        child = folder / part
        if not child.is_dir():
            child.mkdir(mode=0o700, exist_ok=True)
            os.chmod(child, 0o700)
            fsync_dir(folder)
        folder = child
    return folder


def seal(
    source: BinaryIO,
    target: Path,
    recipients: Sequence[Recipient],
    identities: Sequence[Identity],
    *,
    before_replace: Callable[[Digest], None] | None = None,
) -> Sealed:
    """Encrypt ``source`` to ``target`` through a verified temporary file.

    ``before_replace`` gets the plaintext digest and may raise to abandon the write
    (key rotation checks it against the index there).
    """
    reader = _HashingReader(source)
    try:
        with atomic_output(target, suffix=".age") as staged:
            writer = _HashingWriter(staged.file)
            try:
                pyrage.encrypt_io(reader, writer, list(recipients))
            except pyrage.EncryptError:
                if writer.failure is not None:
                    raise writer.failure from None
                raise
            staged.close()
            plain = reader.digest()
            _check_opens(staged.path, target, identities, plain)
            if before_replace is not None:
                before_replace(plain)
    except OSError as exc:  # disk full, quota, read-only: the temporary file is gone
        raise write_failure(exc, f"archive item {target.name}", target.parent) from exc
    return Sealed(plain=plain, cipher=writer.digest())


def _check_opens(staged: Path, target: Path, identities: Sequence[Identity], plain: Digest) -> None:
    """An item our own key cannot open is lost for good (``archive.pub`` replaced by
    another key, say): refuse it before it replaces anything."""
    try:
        opened = decrypt_to(staged, identities, None)
    except ArchiveError as exc:
        if "wrong key" not in exc.message:
            raise ArchiveError(f"{target.name} was not archived: {exc.message}") from None
        raise ArchiveError(
            f"{target.name} was not archived: the archive key cannot open it",
            hint="keys/archive.pub must be the public key of keys/archive.key",
        ) from None
    if opened != plain:
        raise ArchiveError(f"{target.name} did not decrypt back to what was encrypted")


def reseal(
    path: Path,
    old: Sequence[Identity],
    recipients: Sequence[Recipient],
    new: Sequence[Identity],
    expected: Digest,
) -> Sealed:
    """Re-encrypt ``path`` in place to new recipients; plaintext only crosses a pipe.

    A thread decrypts into the pipe while this one encrypts from it; the new file
    replaces the old only if the plaintext that went through matches ``expected``.
    """
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []
    hasher = _HashingWriter()

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as pipe_in, open(path, "rb") as source:
                hasher.sink = pipe_in
                pyrage.decrypt_io(source, hasher, list(old))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=produce, name="archive-reseal", daemon=True)

    def check(plain: Digest) -> None:
        thread.join()
        if failure:
            raise ArchiveError(
                f"cannot re-encrypt {path}: {describe_decrypt_error(failure[0])}"
            ) from None
        if plain != expected or hasher.digest() != expected:
            raise ArchiveError(f"cannot re-encrypt {path}: its content differs from the index")

    thread.start()
    try:
        with os.fdopen(read_fd, "rb") as pipe_out:
            return seal(pipe_out, path, recipients, new, before_replace=check)
    finally:
        thread.join()
