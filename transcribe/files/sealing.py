"""age on the way out, age on the way in: the working key of platform mode.

Every object the S3 store sends is an age file, so a leaked bucket (a wrong ACL, a
stolen backup, a curious provider) holds no audio or text in clear. Work files are
encrypted to the *working key*, which every worker holds, so that any machine can
pick up any task; archive items are already age files sealed to the archive key and
go as they are, so they still open with ``age -d -i keys/archive.key`` anywhere.

* ``keys/working.key`` — the working identity (owner-only), in ``age-keygen`` format:
  ``age -d -i keys/working.key OBJECT`` opens a work object by hand when needed;
* ``keys/working.pub`` — its recipient, enough for a machine that only uploads.

:func:`age_problem` is the last check before any byte leaves the machine: whatever
path led there, an object that is not an age file is never sent.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyrage

from ..errors import ConfigError, FileStoreError, WorkspaceError
from ..fsutil import atomic_write_text
from ..keys import Identity, identity_file_text, parse_identities

AGE_MAGIC = b"age-encryption.org/v1\n"
HEADER_LIMIT = 64 * 1024  # a header with a hundred SSH-RSA recipients still fits
_MAC_LINE = 1 + 4 + 43 + 1  # "\n--- " + base64 of a 32-byte MAC (no padding) + "\n"
_MIN_PAYLOAD = 16 + 16  # nonce + the tag of the (possibly empty) last chunk
WORKING_KEY_NAME = "working.key"
WORKING_PUB_NAME = "working.pub"


def age_problem(head: bytes, size: int) -> str | None:
    """None if ``head`` (the first bytes of a ``size``-byte payload) is an age file's
    start: the v1 magic line, stanzas, the ``---`` MAC line, room for a payload."""
    if not head.startswith(AGE_MAGIC):
        return "it does not start with the age header (age-encryption.org/v1)"
    end = head.find(b"\n--- ", 0, HEADER_LIMIT)
    if end < 0:
        return "its age header has no MAC line"
    mac = head[end + 5 : end + _MAC_LINE]
    if not mac.endswith(b"\n") or not _is_base64(mac[:-1]):
        return "its age header's MAC line is malformed"
    if size < end + _MAC_LINE + _MIN_PAYLOAD:
        return "it is shorter than the smallest age file"
    return None


def _is_base64(text: bytes) -> bool:
    try:
        base64.b64decode(text + b"=", validate=True)
    except ValueError:
        return False
    return len(text) == 43


def require_age_file(path: Path, what: str) -> None:
    """Refuse ``path`` unless it is an age file (FileStoreError naming ``what``)."""
    with open(path, "rb") as handle:
        head = handle.read(HEADER_LIMIT)
        size = os.fstat(handle.fileno()).st_size
    problem = age_problem(head, size)
    if problem:
        raise FileStoreError(f"refused to store {what}: {problem}")


class HashingReader:
    """Feeds pyrage from a file while hashing the plaintext it reads."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.hash.update(data)
        return data


class RecordingReader:
    """Passes reads through, keeping the source's own error: pyrage turns any error of
    its reader into a bare OSError, and a dropped connection is not a damaged object."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.failure: Exception | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            return self.source.read(n)
        except Exception as exc:
            self.failure = exc
            raise


class HashingWriter:
    """Receives pyrage's plaintext, hashes it, passes it on; keeps a sink's own error."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.failure: OSError | None = None

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        try:
            self.sink.write(data)
        except OSError as exc:
            self.failure = exc
            raise
        return len(data)

    def flush(self) -> None:
        self.sink.flush()


def encrypt_file(source: Path, target: Path, recipient: pyrage.x25519.Recipient) -> str:
    """Encrypt ``source`` into a new private ``target``; the plaintext's SHA-256."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(source, "rb") as plain, os.fdopen(fd, "wb") as sealed:
        reader = HashingReader(plain)
        pyrage.encrypt_io(reader, sealed, [recipient])
    return reader.hash.hexdigest()


def decrypt_stream(source: BinaryIO, sink: BinaryIO, identities: list[Identity], key: str) -> str:
    """Decrypt ``source`` into ``sink``; the plaintext's SHA-256. A damaged object, or
    one not sealed to the working key, is a FileStoreError; a failing source or sink
    raises its own error (a dropped connection, a full disk)."""
    reader, writer = RecordingReader(source), HashingWriter(sink)
    try:
        pyrage.decrypt_io(reader, writer, identities)
    except (pyrage.DecryptError, OSError) as exc:
        if writer.failure is not None:
            raise writer.failure from None
        if reader.failure is not None:
            raise reader.failure from None
        if "No matching keys" in str(exc):
            reason = "it is not encrypted to the working key (keys/working.key)"
        else:
            reason = f"it is truncated or altered (age: {exc})"
        raise FileStoreError(f"cannot decrypt {key!r}: {reason}") from None
    return writer.hash.hexdigest()


def _read_owner_only(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise WorkspaceError(
            f"no working key at {path}", hint="create it with ensure_working_key"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot open key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"key file {path} is accessible to group/others ({stat.filemode(mode)})",
                hint=f"chmod 600 {path}",
            )
        return handle.read()


@dataclass(frozen=True)
class WorkingKey:
    """The working key files of a workspace; reading the secret is always explicit."""

    folder: Path

    @property
    def identity_path(self) -> Path:
        return self.folder / WORKING_KEY_NAME

    @property
    def recipient_path(self) -> Path:
        return self.folder / WORKING_PUB_NAME

    def identities(self) -> list[Identity]:
        text = _read_owner_only(self.identity_path).decode("utf-8", errors="replace")
        return parse_identities(text, self.identity_path)

    def recipient(self) -> pyrage.x25519.Recipient:
        """From ``working.pub``; a machine that only uploads needs no secret."""
        try:
            text = self.recipient_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise WorkspaceError(
                f"no working key recipient at {self.recipient_path}",
                hint="copy working.pub from the machine that made the working key",
            ) from None
        try:
            return pyrage.x25519.Recipient.from_str(text)
        except pyrage.RecipientError:
            raise ConfigError(f"{self.recipient_path} is not an age recipient") from None

    def check_pair(self) -> None:
        """An object sealed to a recipient whose identity nobody holds is lost: refuse a
        ``working.pub`` that is not the public half of ``working.key``."""
        public = {str(identity.to_public()) for identity in self.identities()}
        if str(self.recipient()) not in public:
            raise ConfigError(
                f"{self.recipient_path} is not the public key of {self.identity_path}",
                hint="copy both files from the machine that made the working key",
            )


def ensure_working_key(folder: Path) -> list[str]:
    """Create the working identity and its recipient if missing; return what was made.

    Harmless to run again: an existing key is never replaced (objects sealed to it
    would become unreadable). The other machines get copies of both files.
    """
    key = WorkingKey(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if key.identity_path.exists():
        os.chmod(key.identity_path, 0o600)
        return []
    identity = Identity.generate()
    atomic_write_text(key.identity_path, identity_file_text(identity), mode=0o600)
    atomic_write_text(key.recipient_path, f"{identity.to_public()}\n", mode=0o600)
    return [WORKING_KEY_NAME, WORKING_PUB_NAME]
