"""Key rotation: every archived item re-encrypted to a new archive key, in place.

1. A new identity is written as ``keys/archive.key.next`` (kept if already there, so
   an interrupted rotation resumes with the same key). From then on, newly archived
   items are encrypted to both keys.
2. Each item is decrypted with the current key and encrypted to the new one (plus
   the client's own recipients, re-read now) through a pipe, verified against the
   index, and swapped in atomically; its index row is then updated. An item already
   re-encrypted before a crash is recognised (it opens with the new key alone and
   matches the index) and only its index row is fixed.
3. The current identity moves to ``keys/retired/`` and the new one takes its place.

Plaintext never touches the disk. An item that is missing or altered stops the
rotation before any key is retired: restore it from a backup first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..fsutil import sha256_file
from ..keys import (
    ArchiveKeys,
    Identity,
    Recipient,
    finish_rotation,
    load_identities,
    parse_recipients,
    passphrase_from_env,
    start_rotation,
)
from ..store import JobStore
from .crypto import ArchiveError, Digest, Sealed, cipher_problem, decrypt_to, reseal
from .index import IndexedItem, items
from .lock import archive_lock


@dataclass(frozen=True)
class RotationResult:
    reencrypted: int
    already_done: int
    retired: Path
    seconds: float


def rotate_keys(
    config: Config, store: JobStore, *, passphrase: str | None = None
) -> RotationResult:
    """Re-encrypt the whole archive to a new key, then retire the old key (resumable)."""
    with archive_lock(config):
        return _rotate(config, store, passphrase)


def _rotate(config: Config, store: JobStore, passphrase: str | None) -> RotationResult:
    started = time.monotonic()
    keys = ArchiveKeys(config.paths.keys)
    passphrase = passphrase or passphrase_from_env()
    if not keys.identity_path.exists() and keys.rotating():
        retired = finish_rotation(keys)  # the crash came after every item was done
        store.record("key-rotate", None, "interrupted rotation finished")
        return RotationResult(0, 0, retired, time.monotonic() - started)
    old = load_identities(keys.identity_path, passphrase)
    start_rotation(keys, passphrase)
    store.record("key-rotate-start", None, "new archive key created; re-encrypting")
    new = load_identities(keys.next_identity_path, passphrase)
    new_recipient = keys.next_recipient_path
    done = skipped = 0
    for item in items(store, include_purged=False):
        client = store.get(item.job_id).client
        recipients = _recipients(keys, new_recipient, client)
        sealed, fresh = _rotate_item(config, item, old, new, recipients)
        done += fresh
        skipped += not fresh
        store.set_archive_cipher(item.job_id, item.kind, sealed.cipher.sha256, sealed.cipher.size)
    retired = finish_rotation(keys)
    store.record(
        "key-rotate", None, f"{done} item(s) re-encrypted; old key retired to keys/retired/"
    )
    return RotationResult(done, skipped, retired, time.monotonic() - started)


def _recipients(keys: ArchiveKeys, new_recipient: Path, client: str) -> list[Recipient]:
    text = new_recipient.read_text(encoding="utf-8")
    return parse_recipients(text, new_recipient) + keys.client_recipients(client)


def _rotate_item(
    config: Config,
    item: IndexedItem,
    old: list[Identity],
    new: list[Identity],
    recipients: list[Recipient],
) -> tuple[Sealed, bool]:
    """(the item's new sealing, whether it was re-encrypted now)."""
    path = config.paths.archive / item.path
    problem = cipher_problem(path, item.cipher)
    if problem is None:
        return reseal(path, [*old, *new], recipients, new, item.plain), True
    if problem != "missing" and _opens_with(path, new, item.plain):
        cipher = Digest(sha256_file(path), path.stat().st_size)
        return Sealed(plain=item.plain, cipher=cipher), False
    raise ArchiveError(
        f"cannot rotate keys: archive file {path} is {problem}",
        hint="restore it from a backup, check with `archive verify`, then rotate again",
    )


def _opens_with(path: Path, identities: list[Identity], expected: Digest) -> bool:
    """Re-encrypted by an interrupted rotation: opens with the new key, same content."""
    try:
        return decrypt_to(path, identities, None) == expected
    except ArchiveError:
        return False
