"""The archive's keys, in ``keys/`` (outside ``archive/``), every file owner-only.

* ``archive.key`` — the secretariat's age identity, in the format ``age-keygen``
  writes, so ``age -d -i keys/archive.key FILE.age`` opens any archived item for as
  long as the age format exists. With a passphrase (``$TRANSCRIBE_ARCHIVE_PASSPHRASE``
  set when the key is created), the identity file is itself age-encrypted with that
  passphrase (scrypt), which the ``age`` tool also understands: it asks for it.
  Every process that archives, reads or rotates then needs that variable.
* ``archive.pub`` — its recipient (public key): what items are encrypted to.
* ``index.key`` — the secret of the blind index (HMAC-SHA256 of patient and matter
  names), so the job store can be searched by name without holding any name.
* ``<client>.recipients`` — optional, one age recipient per line (``age1…`` or an SSH
  public key; ``#`` comments), the format of ``age -R``: the client's own keys, so
  they can open their own archive with the standard tool.
* ``archive.key.next`` / ``archive.pub.next`` — only while a rotation is under way;
  ``retired/`` keeps replaced identities (for backups made before the rotation).
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyrage

from .errors import ConfigError, WorkspaceError
from .fsutil import atomic_write_bytes, atomic_write_text, fsync_dir

PASSPHRASE_ENV = "TRANSCRIBE_ARCHIVE_PASSPHRASE"
IDENTITY_NAME = "archive.key"
RECIPIENT_NAME = "archive.pub"
INDEX_KEY_NAME = "index.key"
NEXT_SUFFIX = ".next"
RETIRED_DIR = "retired"
RECIPIENTS_SUFFIX = ".recipients"
ENCRYPTED_PREFIXES = (b"age-encryption.org/", b"-----BEGIN AGE ENCRYPTED FILE-----")

Identity = pyrage.x25519.Identity
Recipient = pyrage.x25519.Recipient | pyrage.ssh.Recipient


def passphrase_from_env() -> str | None:
    """The archive key's passphrase, if the operator gave one (never in the config)."""
    return os.environ.get(PASSPHRASE_ENV) or None


def _read_private(path: Path) -> bytes:
    """Read a key file, refusing one that group or others could read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise WorkspaceError(
            f"no archive key at {path}", hint="run `transcribe init` to create one"
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


def identity_file_text(identity: Identity) -> str:
    """What ``age-keygen`` writes: readable by the age tool and by :func:`parse_identities`."""
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"# created: {created}\n# public key: {identity.to_public()}\n{identity}\n"


def parse_identities(text: str, where: Path) -> list[Identity]:
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(Identity.from_str(line))
        except pyrage.IdentityError:
            raise ConfigError(f"{where}:{number} is not an age identity") from None
    if not identities:
        raise ConfigError(f"{where} holds no age identity")
    return identities


def load_identities(path: Path, passphrase: str | None = None) -> list[Identity]:
    """The identities of an identity file, decrypting it first if passphrase-protected."""
    data = _read_private(path)
    if data.startswith(ENCRYPTED_PREFIXES):
        passphrase = passphrase or passphrase_from_env()
        if not passphrase:
            raise ConfigError(
                f"the archive key {path.name} is passphrase-protected",
                hint=f"set {PASSPHRASE_ENV}",
            )
        try:
            data = pyrage.passphrase.decrypt(data, passphrase)
        except pyrage.DecryptError:
            raise ConfigError(
                f"wrong passphrase for the archive key {path.name}",
                hint=f"check {PASSPHRASE_ENV}",
            ) from None
    return parse_identities(data.decode("utf-8"), path)


def write_identity(path: Path, identity: Identity, passphrase: str | None) -> None:
    """Identity file (0600), age-encrypted with ``passphrase`` when one is given."""
    text = identity_file_text(identity).encode("utf-8")
    data = pyrage.passphrase.encrypt(text, passphrase) if passphrase else text
    atomic_write_bytes(path, data, mode=0o600)


def parse_recipients(text: str, where: Path) -> list[Recipient]:
    """``age -R`` format: one recipient per line, ``#`` comments, blank lines ignored."""
    recipients: list[Recipient] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("age1"):
                recipients.append(pyrage.x25519.Recipient.from_str(line))
            elif line.startswith(("ssh-ed25519 ", "ssh-rsa ")):
                recipients.append(pyrage.ssh.Recipient.from_str(line))
            else:
                raise pyrage.RecipientError(line)
        except pyrage.RecipientError:
            raise ConfigError(
                f"{where}:{number} is not an age recipient (age1… or an SSH public key)"
            ) from None
    return recipients


@dataclass(frozen=True)
class ArchiveKeys:
    """The key files of one workspace; reading a secret is always explicit."""

    folder: Path

    @property
    def identity_path(self) -> Path:
        return self.folder / IDENTITY_NAME

    @property
    def recipient_path(self) -> Path:
        return self.folder / RECIPIENT_NAME

    @property
    def next_identity_path(self) -> Path:
        return self.folder / (IDENTITY_NAME + NEXT_SUFFIX)

    @property
    def next_recipient_path(self) -> Path:
        return self.folder / (RECIPIENT_NAME + NEXT_SUFFIX)

    @property
    def index_key_path(self) -> Path:
        return self.folder / INDEX_KEY_NAME

    def rotating(self) -> bool:
        return self.next_identity_path.exists()

    def identities(self, passphrase: str | None = None) -> list[Identity]:
        """The current identity, plus the next one while a rotation is under way."""
        self._check_not_interrupted()
        found = load_identities(self.identity_path, passphrase)
        if self.rotating():
            found += load_identities(self.next_identity_path, passphrase)
        return found

    def archive_recipients(self) -> list[Recipient]:
        """The secretariat's key (and the next one while rotating): no secret needed."""
        self._check_not_interrupted()
        paths = [self.recipient_path]
        if self.rotating():
            paths.append(self.next_recipient_path)
        found: list[Recipient] = []
        for path in paths:
            if not path.is_file():
                raise WorkspaceError(f"no archive recipient at {path}", hint="run `init`")
            found += parse_recipients(path.read_text(encoding="utf-8"), path)
        return found

    def client_recipients(self, client: str) -> list[Recipient]:
        """The client's own keys, if ``keys/<client>.recipients`` exists."""
        path = self.folder / f"{client}{RECIPIENTS_SUFFIX}"
        if not path.is_file():
            return []
        return parse_recipients(path.read_text(encoding="utf-8"), path)

    def recipients(self, client: str) -> list[Recipient]:
        return self.archive_recipients() + self.client_recipients(client)

    def index_secret(self) -> bytes:
        data = _read_private(self.index_key_path).strip()
        try:
            secret = bytes.fromhex(data.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            secret = b""
        if len(secret) < 32:
            raise ConfigError(f"{self.index_key_path} is not a 256-bit hex secret")
        return secret

    def _check_not_interrupted(self) -> None:
        if not self.identity_path.exists() and self.rotating():
            raise WorkspaceError(
                "a key rotation was interrupted while swapping keys",
                hint="run `transcribe keys rotate` again to finish it",
            )


def ensure_archive_keys(folder: Path, *, passphrase: str | None = None) -> list[str]:
    """Create the archive identity, its recipient and the blind-index secret if missing.

    Harmless to run again: existing keys are kept (a key is never silently replaced)
    and only their permissions are tightened. ``passphrase`` defaults to
    ``$TRANSCRIBE_ARCHIVE_PASSPHRASE``; without one the identity file is plain (0600).
    Returns the names of the files created.
    """
    keys = ArchiveKeys(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    created = []
    if not keys.identity_path.exists() and not keys.rotating():
        identity = Identity.generate()
        write_identity(keys.identity_path, identity, passphrase or passphrase_from_env())
        atomic_write_text(keys.recipient_path, f"{identity.to_public()}\n", mode=0o600)
        created += [IDENTITY_NAME, RECIPIENT_NAME]
    if not keys.index_key_path.exists():
        atomic_write_text(keys.index_key_path, secrets.token_hex(32) + "\n", mode=0o600)
        created.append(INDEX_KEY_NAME)
    for path in (keys.identity_path, keys.recipient_path, keys.index_key_path):
        if path.exists():
            os.chmod(path, 0o600)
    return created


def start_rotation(keys: ArchiveKeys, passphrase: str | None) -> None:
    """Write the next identity beside the current one (resumable: kept if present)."""
    if keys.rotating():
        return
    identity = Identity.generate()
    atomic_write_text(keys.next_recipient_path, f"{identity.to_public()}\n", mode=0o600)
    write_identity(keys.next_identity_path, identity, passphrase)


def finish_rotation(keys: ArchiveKeys) -> Path:
    """Retire the current identity and put the next one in its place.

    Each step is a rename, and the state on disk says where a crash stopped:
    ``archive.key.next`` present means "not finished", and ``archive.key`` missing
    with it means "retired, not yet replaced" (:meth:`ArchiveKeys.identities` says so).
    """
    retired_dir = keys.folder / RETIRED_DIR
    retired_dir.mkdir(mode=0o700, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    retired = retired_dir / f"archive-{stamp}.key"
    if keys.identity_path.exists():
        os.replace(keys.identity_path, retired)
        fsync_dir(retired_dir)
    if keys.next_recipient_path.exists():
        os.replace(keys.next_recipient_path, keys.recipient_path)
    os.replace(keys.next_identity_path, keys.identity_path)
    fsync_dir(keys.folder)
    return retired
