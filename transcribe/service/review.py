"""The review loop over the network, the server's half: leases, drafts, audio windows,
approval, questions to the author, and the signed letter.

Why leases and revisions, not the local loop's lock alone:

- A **lease** is the review lock (``jobs.review_lock``) held as ``api:NAME#TOKEN``. The
  token tells two clients of one account apart, and is renewed by every save or by a
  plain ``POST .../lease`` while the secretary works. A save or an approval is taken
  only with a live lease, renewed atomically (:meth:`JobStore.renew_review`, which never
  takes a lock over): a client whose lease expired and was taken by a colleague writes
  nothing. No database transaction or session lock is held while a person types.
- A **revision** counts the saves of a draft (``draft["revision"]``). A save names the
  revision it was made on; if the draft moved on meanwhile (another client, a local
  review), the save is refused with 409 and the client keeps its edits to show them as
  a conflict. Nothing is merged silently.
- A save carries **edits** (start, end, replacement), as the local loop makes them, and
  the server applies each with :func:`~transcribe.draft.apply_edit` and records it in
  ``corrections.json``: the learning from corrections works the same, and a client
  sending the SHA-256 of the text it expects is told if the two ever disagree.

Every read of a draft, an audio window, a question or a letter is audited with who
read it (the CNIL's traceability of access to health data), as every change is.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..draft import apply_edit, load_draft, save_draft
from ..errors import AudioError, ConfigError, StateError
from ..fsutil import temp_prefix
from ..review.approval import (
    QUERY_NAME,
    approve_job,
    back_to_review,
    field_key,
    letter_fields,
    record_edit,
    send_back,
)
from ..review.audio import SPEEDS, decode_window, wav_bytes
from ..review.queue import queue_entries
from ..review.settings import load_settings
from ..stages.transcription import audio_file, draft_path, job_dir
from ..status import status_row
from ..store import Job, JobState, JobStore
from ..store.model import LEASE_MARK, Account
from .refusal import Refusal

LEASE_TOKEN = re.compile(r"^[0-9a-f]{32}$")
SHA256 = re.compile(r"[0-9a-f]{64}")
#: a save's body may hold a whole retyped letter ("text" edits)
MAX_SAVE_KB = 512
MAX_EDITS = 1000
MAX_FIELD_CHARS = 2000
#: one audio window: the review plays a few seconds around a word, a replay more
MAX_WINDOW_S = 60.0
EDIT_KINDS = ("word", "sentence", "text")
#: a save reads, changes and writes the draft file: one at a time per job here, through
#: a fixed set of locks (a lock per job ever saved would grow with the server's uptime)
_DRAFT_LOCKS = tuple(threading.Lock() for _ in range(64))


@dataclass(frozen=True)
class Lease:
    job_id: str
    token: str
    expires_at: float
    revision: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "lease": self.token,
            "expires_at": self.expires_at,
            "revision": self.revision,
        }


def holder(account: Account, token: str) -> str:
    """The review lock a lease is: ``api:NAME#TOKEN``."""
    return f"api:{account.name}{LEASE_MARK}{token}"


def revision(draft: dict[str, Any]) -> int:
    return int(draft.get("revision") or 0)


def _lock_timeout(config: Config) -> float:
    return load_settings(config.paths.home).lock_timeout_s


def _draft_of(config: Config, job: Job) -> tuple[Path, dict[str, Any]]:
    if job.state != JobState.REVIEW:
        raise Refusal(409, f"job {job.id} is {job.state}, not review")
    path = draft_path(config, job)
    if not path.is_file():
        raise Refusal(409, f"job {job.id} has no draft")
    return path, load_draft(path)


def _draft_lock(job_id: str) -> threading.Lock:
    return _DRAFT_LOCKS[int(hashlib.sha256(job_id.encode()).hexdigest(), 16) % len(_DRAFT_LOCKS)]


# -- leases ---------------------------------------------------------------------------


def take_lease(
    config: Config, store: JobStore, account: Account, job: Job, token: str | None = None
) -> Lease:
    """A new lease on a job in review, or ``token``'s renewed; 409 while another
    reviewer holds the job, or when ``token``'s lease was lost."""
    _path, draft = _draft_of(config, job)
    timeout_s = _lock_timeout(config)
    if token is not None:
        _renew(store, account, job, token, timeout_s)
    else:
        token = secrets.token_hex(16)
        try:
            store.lock_for_review(job.id, holder(account, token), timeout_s=timeout_s)
        except StateError as exc:  # with its hint: when the other reviewer's lock expires
            raise Refusal(409, str(exc)) from None
    return Lease(job.id, token, time.time() + timeout_s, revision(draft))


def _renew(store: JobStore, account: Account, job: Job, token: str, timeout_s: float) -> None:
    if not LEASE_TOKEN.match(token):
        raise Refusal(400, "not a lease token")
    if not store.renew_review(job.id, holder(account, token), timeout_s=timeout_s):
        raise Refusal(
            409,
            f"the lease on job {job.id} was lost (it expired, or someone took the job over): "
            "take a new lease",
        )


def release_lease(store: JobStore, account: Account, job: Job, token: str) -> None:
    if not LEASE_TOKEN.match(token):
        raise Refusal(400, "not a lease token")
    store.unlock_review(job.id, holder(account, token))


# -- the queue ----------------------------------------------------------------------


def review_queue(config: Config, store: JobStore, jobs: list[Job]) -> list[dict[str, Any]]:
    """The review queue's rows of ``jobs`` (those an account may see); audited. A row is
    a ``status --json`` row with what the queue shows: author, document type, doubtful
    places, and who reviews the job now (never a lease's token)."""
    settings = load_settings(config.paths.home)
    entries = queue_entries(config, [j for j in jobs if j.state == JobState.REVIEW], settings)
    store.record("list", None, f"{len(entries)} jobs of the review queue listed over the API")
    return [
        {
            **status_row(entry.job),
            "author": entry.job.author,
            "document_type": entry.job.document_type,
            "doubtful": entry.doubtful,
            "locked_by": entry.locked_by,
        }
        for entry in entries
    ]


# -- drafts ---------------------------------------------------------------------------


def read_draft(config: Config, store: JobStore, job: Job) -> dict[str, Any]:
    """The draft as the review loop needs it, with the letter's fields; audited."""
    _path, draft = _draft_of(config, job)
    template = letter_fields(config, job)
    store.record("read-draft", job.id, f"draft revision {revision(draft)} read over the API")
    return {
        "job_id": job.id,
        "revision": revision(draft),
        "language": draft.get("language"),
        "text": draft["text"],
        "words": draft["words"],
        "fields": draft.get("fields") or {},
        "cursor": int(draft.get("cursor") or 0),
        "unreliable": draft.get("unreliable") or [],
        "warnings": draft.get("warnings") or [],
        "template": None
        if template is None
        else {
            "required": list(template.required),
            "optional": list(template.optional),
            "body": template.body_field,
        },
    }


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    replacement: str
    kind: str


@dataclass(frozen=True)
class Save:
    """A client's save: its edits in order, made on draft ``revision``."""

    revision: int
    edits: tuple[Edit, ...]
    fields: dict[str, str] | None
    cursor: int | None
    looked_at: tuple[int, ...]
    text_sha256: str | None


def parse_save(body: dict[str, Any]) -> Save:
    """The body of ``PUT .../draft``, checked; 400 with one line otherwise."""
    base = body.get("revision")
    if not isinstance(base, int) or isinstance(base, bool) or base < 0:
        raise Refusal(400, "a save names the draft revision it was made on")
    raw_edits = body.get("edits", [])
    if not isinstance(raw_edits, list) or len(raw_edits) > MAX_EDITS:
        raise Refusal(400, f"edits: a list of at most {MAX_EDITS}")
    fields = body.get("fields")
    if fields is not None and not _is_fields(fields):
        raise Refusal(400, f"fields: an object of strings of at most {MAX_FIELD_CHARS} characters")
    cursor = body.get("cursor")
    if cursor is not None and (not isinstance(cursor, int) or cursor < 0):
        raise Refusal(400, "cursor: a character offset")
    looked_at = body.get("looked_at", [])
    if not isinstance(looked_at, list) or not all(isinstance(i, int) for i in looked_at):
        raise Refusal(400, "looked_at: a list of unreliable passage numbers")
    digest = body.get("text_sha256")
    if digest is not None and not (
        isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)
    ):
        raise Refusal(400, "text_sha256: the hex SHA-256 of the text after the edits")
    edits = tuple(_parse_edit(item) for item in raw_edits)
    return Save(base, edits, fields, cursor, tuple(looked_at), digest)


def _is_fields(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_FIELD_CHARS
        for k, v in value.items()
    )


def _parse_edit(item: Any) -> Edit:
    if not isinstance(item, dict):
        raise Refusal(400, "an edit is an object: start, end, replacement, kind")
    start, end, text, kind = (item.get(k) for k in ("start", "end", "replacement", "kind"))
    if not (isinstance(start, int) and isinstance(end, int) and isinstance(text, str)):
        raise Refusal(400, "an edit has integer start and end and a string replacement")
    if kind not in EDIT_KINDS:
        raise Refusal(400, f"an edit's kind is one of {', '.join(EDIT_KINDS)}")
    return Edit(start, end, text, kind)


def save_edits(
    config: Config, store: JobStore, account: Account, job: Job, token: str, save: Save
) -> dict[str, Any]:
    """Apply a client's save under its live lease; the new revision. 409 when the lease
    was lost or the draft moved on since ``save.revision`` (nothing is written then)."""
    _renew(store, account, job, token, _lock_timeout(config))
    with _draft_lock(job.id):
        path, draft = _draft_of(config, job)
        if revision(draft) != save.revision:
            raise Refusal(
                409,
                f"the draft of job {job.id} changed since revision {save.revision} "
                f"(now {revision(draft)}): reload it",
            )
        edited = _applied(config, job, draft, save, reviewer=f"api:{account.name}")
        save_draft(path, edited)
    detail = f"{len(save.edits)} edit(s), revision {revision(edited)}"
    store.record("draft-saved", job.id, detail)
    return {"job_id": job.id, "revision": revision(edited)}


def _applied(
    config: Config, job: Job, draft: dict[str, Any], save: Save, *, reviewer: str
) -> dict[str, Any]:
    """The draft after the save; corrections recorded as the local loop records them,
    only once every edit fitted and the text is the client's (else nothing is written)."""
    fields = None if save.fields is None else _fields(save.fields)
    steps: list[tuple[dict[str, Any], dict[str, Any], Edit]] = []
    for edit in save.edits:
        try:
            after = apply_edit(draft, edit.start, edit.end, edit.replacement)
        except ValueError as exc:
            raise Refusal(400, f"an edit does not fit the draft: {exc}") from None
        steps.append((draft, after, edit))
        draft = after
    if save.text_sha256 and hashlib.sha256(draft["text"].encode()).hexdigest() != save.text_sha256:
        raise Refusal(409, f"the edits do not give the client's text of job {job.id}: reload it")
    for before, after, edit in steps:
        record_edit(
            config,
            job,
            before,
            after["text"],
            reviewer=reviewer,
            kind=edit.kind,
            start=edit.start,
            end=edit.end,
            replacement=edit.replacement,
        )
    if fields is not None:
        draft = {**draft, "fields": fields}
    if save.cursor is not None:
        draft = {**draft, "cursor": min(save.cursor, len(draft["text"]))}
    passages = [dict(p) for p in draft.get("unreliable", [])]
    for index in save.looked_at:
        if 0 <= index < len(passages):
            passages[index]["checked"] = True
    return {**draft, "unreliable": passages, "revision": revision(draft) + 1}


def _fields(given: dict[str, str]) -> dict[str, str]:
    try:
        return {field_key(k): v.strip() for k, v in given.items() if v.strip()}
    except ConfigError as exc:
        raise Refusal(400, exc.message) from None


# -- audio ----------------------------------------------------------------------------


def audio_window(
    config: Config, store: JobStore, job: Job, start: float, end: float, speed: float
) -> bytes:
    """``[start, end)`` seconds of the dictation as a WAV, at ``speed``; audited."""
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise Refusal(400, "an audio window is 0 <= start < end seconds")
    if end - start > MAX_WINDOW_S:
        raise Refusal(400, f"an audio window is at most {MAX_WINDOW_S:g} s")
    if speed not in SPEEDS:
        raise Refusal(400, f"speed: one of {', '.join(f'{s:g}' for s in SPEEDS)}")
    path = audio_file(config, job)
    if path is None:
        raise Refusal(404, f"job {job.id} has no audio here")
    try:
        samples = decode_window(path, start, end, speed=speed)
    except AudioError as exc:
        raise Refusal(422, f"the audio of job {job.id} cannot be decoded") from exc
    store.record("listen", job.id, f"audio {start:.1f}-{end:.1f} s at {speed:g}x")
    return wav_bytes(samples)


# -- leaving the review ---------------------------------------------------------------


def approve(
    config: Config,
    store: JobStore,
    account: Account,
    job: Job,
    token: str,
    *,
    base: int | None,
    accept_unreliable: bool,
) -> Job:
    """Approve what the client saw (``base``, its revision) under its live lease."""
    _renew(store, account, job, token, _lock_timeout(config))
    _path, draft = _draft_of(config, job)
    if base is not None and revision(draft) != base:
        raise Refusal(409, f"the draft of job {job.id} changed since revision {base}: reload it")
    try:
        return approve_job(
            config,
            job.id,
            reviewer=f"api:{account.name}",
            lock=holder(account, token),
            accept_unreliable=accept_unreliable,
        )
    except ConfigError as exc:  # required fields missing, empty text
        raise Refusal(422, exc.message) from None
    except StateError as exc:  # unreliable passages not looked at
        raise Refusal(409, exc.message) from None


def ask_author(
    config: Config, store: JobStore, account: Account, job: Job, token: str, question: str
) -> Job:
    _renew(store, account, job, token, _lock_timeout(config))
    try:
        return send_back(
            config, job.id, question, reviewer=f"api:{account.name}", lock=holder(account, token)
        )
    except ConfigError as exc:
        raise Refusal(422, exc.message) from None
    except StateError as exc:
        raise Refusal(409, exc.message) from None


def read_question(config: Config, store: JobStore, job: Job) -> dict[str, Any]:
    """The secretary's question to the author (and the answer, once given); audited."""
    path = job_dir(config, job) / QUERY_NAME
    if not path.is_file():
        raise Refusal(404, f"job {job.id} has no question")
    record = json.loads(path.read_text(encoding="utf-8"))
    store.record("read-question", job.id, "question read over the API")
    keys = ("question", "asked_at", "answer", "answered_at")
    return {"job_id": job.id, "state": str(job.state), **{k: record.get(k) for k in keys}}


def answer_question(config: Config, account: Account, job: Job, answer: str) -> Job:
    """The author's answer: the job goes back to the review queue."""
    if job.state != JobState.QUERY:
        raise Refusal(409, f"job {job.id} is {job.state}: there is no question to answer")
    if not answer.strip() or len(answer) > MAX_FIELD_CHARS:
        raise Refusal(400, f"an answer is 1 to {MAX_FIELD_CHARS} characters")
    return back_to_review(config, job.id, answer=answer.strip(), actor=f"api:{account.name}")


# -- the signed letter ----------------------------------------------------------------


def read_letter(config: Config, store: JobStore, job: Job) -> bytes:
    """The archived signed PDF, decrypted and checked against the archived digest; the
    export and the download are audited. Decrypted in a private scratch folder of the
    server's work folder, removed before the answer leaves."""
    from ..archive import ArchiveError, get_item

    if job.state != JobState.ARCHIVED:
        raise Refusal(409, f"job {job.id} is {job.state}: its letter is not archived yet")
    config.paths.work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=temp_prefix(), dir=config.paths.work))
    try:
        out = scratch / "letter.pdf"
        try:
            get_item(config, store, job.id, out, kind="letter")
        except ArchiveError as exc:
            message = f"the letter of job {job.id} cannot be read back: {exc.message}"
            raise Refusal(500, message) from None
        data = out.read_bytes()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    store.record("download", job.id, "signed letter downloaded over the API")
    return data
