"""Dictations in over the API: an upload becomes a dropped file, then goes through intake.

Why a dropped file: the watcher's intake already holds every check a dictation needs
(decoding child, caps, sidecar validation, content hash, quarantine with a reason,
crash recovery). An upload is written to ``work/uploads/<temp>/<client>/<name>`` with
its sidecar beside it, exactly the layout of ``inbox/<client>/``, and handed to
:func:`~transcribe.stages.intake.take_in`; nothing here decides about the audio.

The folder's name is a temporary one (:func:`~transcribe.fsutil.temp_prefix`): what a
killed server leaves behind is swept at the next start, after the recovery pass has
finished any intake it had committed.

The request carries what a dictaphone puts beside its file, in headers, so that the
body is the audio alone and can be streamed to disk under the size cap:

- ``X-Dictation-Client``: the client (the inbox folder); optional for an account with
  one client;
- ``X-Dictation-Name``: the file's name, percent-encoded UTF-8 (a plain name, no path);
- ``X-Dictation-Sidecar``: the sidecar's JSON object (ASCII, as ``json.dumps`` writes).

Nothing of these reaches a log line: names and sidecars hold patients' names.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..config import Config
from ..fsutil import fsync_dir, temp_prefix
from ..stages.intake import take_in
from ..stages.sidecar import display_name
from ..store import Job, JobState, JobStore
from ..store.model import Account
from .openapi import CLIENT_HEADER, NAME_HEADER, SIDECAR_HEADER
from .refusal import Refusal
from .rights import may_read, may_upload

#: a name's bytes: room left for the sidecar's ``.json`` within the 255 of a file system
MAX_NAME_BYTES = 200
AUDIO_TYPES = ("application/octet-stream",)


@dataclass(frozen=True)
class UploadForm:
    """What the headers say, checked: where the upload goes and what goes beside it."""

    client: str
    name: str
    sidecar: bytes | None
    author: str | None  # whose dictation it is, when the account says (an author's)


@dataclass(frozen=True)
class StoredUpload:
    """The body on disk, whole, with its hash, in a folder of its own."""

    folder: Path
    path: Path
    sha256: str


@dataclass(frozen=True)
class UploadAnswer:
    job: Job
    outcome: str  # accepted | quarantined | duplicate | already-received


def size_cap(config: Config) -> int:
    """The intake's own cap on a file, in bytes: an upload is refused past it, unread."""
    return int(config.limits.max_file_mb * 1024 * 1024)


def read_form(headers: Mapping[str, str], account: Account, config: Config) -> UploadForm:
    """The checked form of an upload's headers, or a refusal (400, 403, 404)."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if not (kind.startswith("audio/") or kind in AUDIO_TYPES):
        raise Refusal(400, "expected audio (Content-Type: audio/... or application/octet-stream)")
    client = _client(headers.get(CLIENT_HEADER), account, config)
    name = _plain_name(headers.get(NAME_HEADER))
    sidecar, author = _sidecar(headers.get(SIDECAR_HEADER), account)
    return UploadForm(client=client, name=name, sidecar=sidecar, author=author)


def _client(given: str | None, account: Account, config: Config) -> str:
    """The client the dictation is for: one the account works for, as a dropped file's
    folder. Another client's name is answered as an unknown one, so none can be probed."""
    if not given:
        if len(account.clients) != 1:
            raise Refusal(400, f"say which client ({CLIENT_HEADER})")
        given = account.clients[0]
    if not may_upload(account, given) or config.client(given) is None:
        raise Refusal(404, "no such client for this account")
    return given


def _plain_name(raw: str | None) -> str:
    """The file's own name, refused when it could be a path or break a line."""
    if not raw:
        raise Refusal(400, f"the file's name is missing ({NAME_HEADER})")
    try:
        name = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise Refusal(400, "the file's name is not percent-encoded UTF-8") from None
    if (
        "/" in name
        or "\\" in name
        or name.startswith(".")
        or display_name(name) != name  # control, bidi-override or undecodable characters
        or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
    ):
        raise Refusal(400, "the file's name must be a plain name, not a path")
    return name


def _sidecar(raw: str | None, account: Account) -> tuple[bytes | None, str | None]:
    """The sidecar to write beside the audio, and whose dictation it is.

    An author's dictation is theirs: their name goes in when the sidecar names no one,
    and a sidecar naming someone else is refused (403). A sidecar that is not valid
    JSON is kept as sent: intake quarantines it with its reason, as a dropped one.
    """
    data = raw.encode("latin-1") if raw is not None else None  # the bytes as sent
    if account.role != "author":
        return data, None
    try:
        fields: Any = json.loads(data) if data is not None else {}
    except (ValueError, RecursionError):
        return data, account.author
    if not isinstance(fields, dict):
        return data, account.author
    if fields.get("author") not in (None, account.author):
        raise Refusal(403, "an author sends only their own dictations")
    fields["author"] = account.author
    return json.dumps(fields).encode("ascii"), account.author


def check_declared_size(headers: Mapping[str, str], config: Config) -> None:
    """413 from Content-Length alone, before a byte of the body is read or stored."""
    declared = headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > size_cap(config)):
        raise Refusal(413, _over_cap(config))


def _over_cap(config: Config) -> str:
    return f"file over the {config.limits.max_file_mb:.0f} MB cap"


async def store_body(
    chunks: AsyncIterator[bytes], form: UploadForm, config: Config
) -> StoredUpload:
    """Write the body (and the sidecar beside it) in a folder of its own, hashing it.

    A body that grows past the cap (chunked, or longer than it said) is refused (413)
    and what was written is removed; so is a body whose sender went away.
    """
    folder = config.paths.work / "uploads" / f"{temp_prefix()}{secrets.token_hex(8)}"
    target = folder / form.client / form.name
    target.parent.mkdir(parents=True, mode=0o700)
    cap, size, digest = size_cap(config), 0, hashlib.sha256()
    try:
        with open(target, "xb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > cap:
                    raise Refusal(413, _over_cap(config))
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if form.sidecar is not None:
            target.with_name(target.name + ".json").write_bytes(form.sidecar)
        fsync_dir(target.parent)
    except OSError as exc:  # disk full: ours, not the sender's; its text names the file
        discard(folder)
        message = f"the server cannot store the upload now: {exc.strerror}"
        raise Refusal(503, message) from None
    except BaseException:
        discard(folder)
        raise
    return StoredUpload(folder, target, digest.hexdigest())


def take_upload(
    config: Config, store: JobStore, account: Account, form: UploadForm, upload: StoredUpload
) -> UploadAnswer:
    """The job of an upload: the one already made from the same audio for this account
    (sending again is safe), or what intake makes of it (accepted, quarantined, a
    duplicate of audio someone else sent)."""
    known = store.find_by_hash(upload.sha256)
    if known is not None and known.client == form.client and may_read(account, known):
        store.record("upload", known.id, "the same audio sent again: already received")
        return UploadAnswer(known, "already-received")
    result = take_in(upload.path, config, store)
    if result.job is None:  # a fault of ours (disk, decoder): the upload stays for recovery
        raise Refusal(503, "the dictation could not be taken in now; send it again")
    job = _owned(store, result.job, form.author)
    if result.outcome == "duplicate" and job.duplicate_of:
        original = store.get(job.duplicate_of)
        if original.client == form.client and may_read(account, original):
            store.record("upload", original.id, "the same audio sent again: already received")
            return UploadAnswer(original, "already-received")
    store.record("upload", job.id, f"dictation uploaded: {result.outcome}")
    return UploadAnswer(job, result.outcome)


def _owned(store: JobStore, job: Job, author: str | None) -> Job:
    """An author's quarantined or duplicate upload carries their name, as an accepted
    one does from its sidecar: they see its state and reason in their list."""
    if author is None or job.author is not None or job.state == JobState.RECEIVED:
        return job
    store.update(job.id, author=author)
    return store.get(job.id)


def clean_up(store: JobStore, upload: StoredUpload) -> None:
    """Remove the upload's folder once intake is done with it. One an unfinished intake
    still points at stays, for the recovery pass (the watcher's, at its next round)."""
    if upload.path.exists():
        known = store.find_by_hash(upload.sha256)
        if known is not None and known.inbox_path is not None:
            return
    discard(upload.folder)


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    fsync_dir(folder.parent)
