"""The review loop as a client of ``transcribe serve`` (``review --server URL``).

The same terminal loop runs on the secretary's own computer: the queue, the draft and
its doubtful words come from the server; the audio around the current word is
fetched as a short WAV and played here, by the player configured here.

Why the edits go the way they do:

- **Typing never waits for the network.** An edit is applied to the draft on screen
  at once (with :func:`~transcribe.draft.apply_edit`, as the server will apply it),
  written to a local journal, and sent by a background thread (:class:`Saver`).
- **No edit is lost.** The journal (``~/.config/transcribe/review/``, owner-only, one
  file per server, account and job) holds the lease token, the draft revision the
  edits were made on, and every edit the server has not confirmed. It is rewritten
  atomically before each edit is sent and removed when the job is left with
  everything saved. A client killed mid-edit finds it when the job is opened again:
  the lease is renewed with the same token (the job is not "being reviewed by"
  yourself for half an hour), and the edits are sent again if the draft is still at
  their revision.
- **A lost lease is said, never hidden.** The server takes a save only under a live
  lease (see :mod:`transcribe.service.review`). When it refuses one, the saver asks
  for the lease back; while a colleague holds the job the header says so and the
  edits stay in the journal; once the lease is back and the draft did not move,
  they are sent. If the draft did move, nothing is merged: the edits are set aside
  in a conflict file, the header says where, and approval waits until the job is
  reopened.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..documents.fields import TemplateFields
from ..draft import apply_edit
from ..errors import ServiceError, StateError, TranscribeError
from ..fsutil import atomic_write_text
from ..service.client import ReviewConflict, ServiceClient
from ..store import Job, JobState
from ..store.model import JOB_COLUMNS
from .queue import QueueEntry
from .session import DraftReview
from .settings import ReviewSettings

log = logging.getLogger(__name__)

#: how often an idle session renews its lease (the server's timeout is minutes)
RENEW_S = 15.0
#: how long to wait before trying again when the server cannot be reached
RETRY_S = 2.0
#: how long leaving the job (or approving) waits for the last saves
FLUSH_S = 15.0

ClientFactory = Callable[[], ServiceClient]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def job_from_row(row: dict[str, Any]) -> Job:
    """A :class:`Job` from a ``status --json`` row (what the server sends); what a row
    does not carry is left empty."""
    values: dict[str, Any] = {name: row.get(name) for name in JOB_COLUMNS}
    values["state"] = JobState(row["state"])
    values["source_name"] = row.get("source") or ""
    values["priority"] = row.get("priority") or "normal"
    values["attempts"] = int(row.get("attempts") or 0)
    for name in ("created_at", "updated_at", "claimed_at", "review_lock_at"):
        stamp = row.get(name)
        values[name] = datetime.fromisoformat(stamp).timestamp() if stamp else None
    values["created_at"] = values["created_at"] or time.time()
    values["updated_at"] = values["updated_at"] or values["created_at"]
    values["warnings"] = tuple(row.get("warnings") or ())
    return Job(**values)


def wav_samples(data: bytes) -> np.ndarray:
    """The int16 samples of a mono WAV as the server sends it."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    except (wave.Error, EOFError) as exc:
        raise ServiceError(f"the server sent audio that is not a WAV: {exc}") from None


# -- the journal ----------------------------------------------------------------------


@dataclass
class Pending:
    """What the server has not confirmed yet: edits made on draft ``base``."""

    lease: str
    base: int
    edits: list[dict[str, Any]] = field(default_factory=list)
    dirty: bool = False  # fields, cursor or passages looked at changed since the last save
    version: int = 0  # counts changes, so a save knows whether more came meanwhile

    @property
    def empty(self) -> bool:
        return not self.edits and not self.dirty


class Journal:
    """One owner-only file per server, account and job (see the module's docstring)."""

    def __init__(self, folder: Path, server: str, user: str, job_id: str) -> None:
        key = hashlib.sha256(f"{server}\n{user}\n{job_id}".encode()).hexdigest()[:32]
        self.folder = folder
        self.path = folder / f"{key}.json"
        self.identity = {"server": server, "user": user, "job_id": job_id}

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if any(data.get(k) != v for k, v in self.identity.items()):
            return None
        return data if isinstance(data.get("edits"), list) else None

    def write(self, pending: Pending, draft: dict[str, Any], cursor: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        data = {
            **self.identity,
            "lease": pending.lease,
            "base": pending.base,
            "edits": pending.edits,
            "fields": draft.get("fields") or {},
            "cursor": cursor,
            "looked_at": looked_at(draft),
        }
        atomic_write_text(self.path, json.dumps(data, ensure_ascii=False) + "\n", mode=0o600)

    def set_aside(self) -> Path:
        """Keep the unsent edits out of the way (owner-only), for the secretary to read."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = self.path.with_name(f"{self.path.stem}.conflict-{stamp}.json")
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path, kept)
        return kept

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def looked_at(draft: dict[str, Any]) -> list[int]:
    return [i for i, p in enumerate(draft.get("unreliable") or ()) if p.get("checked")]


def replay(draft: dict[str, Any], kept: dict[str, Any]) -> tuple[dict[str, Any], list[Any]] | None:
    """The server's draft with a journal's edits, fields, cursor and passages applied,
    and those edits; None when they do not give the texts they gave (a changed draft)."""
    edits = list(kept["edits"])
    for edit in edits:
        try:
            draft = apply_edit(draft, edit["start"], edit["end"], edit["replacement"])
        except (KeyError, TypeError, ValueError):
            return None
        if _digest(draft["text"]) != edit.get("text_sha256"):
            return None
    passages = [dict(p) for p in draft.get("unreliable") or ()]
    for index in kept.get("looked_at") or ():
        if isinstance(index, int) and 0 <= index < len(passages):
            passages[index]["checked"] = True
    draft = {**draft, "fields": dict(kept.get("fields") or {}), "unreliable": passages}
    return draft, edits


# -- the session ----------------------------------------------------------------------


class RemoteReviewSession(DraftReview):
    """One job of a server open for review under a lease; edits saved in the background."""

    def __init__(
        self,
        client: ServiceClient,
        saver_client: ServiceClient,
        job: Job,
        draft: dict[str, Any],
        *,
        lease: str,
        journal: Journal,
        reviewer: str,
        settings: ReviewSettings,
        kept: dict[str, Any] | None = None,
    ) -> None:
        spec = draft.get("template")
        template = (
            None
            if spec is None
            else TemplateFields(tuple(spec["required"]), tuple(spec["optional"]), spec["body"])
        )
        self.client = client
        self.journal = journal
        self.pending = Pending(lease, int(draft["revision"]))
        if kept is not None:
            draft = self._resume(draft, kept)
        super().__init__(job, draft, template, reviewer=reviewer, settings=settings)
        if kept is not None and kept.get("cursor") is not None:
            self.cursor = min(max(int(kept["cursor"]), 0), len(self.text))
        self.scratch = Path(tempfile.mkdtemp(prefix="transcribe-review-"))
        self._lock = threading.Condition()
        self.journal.write(self.pending, self.draft, self.cursor)
        self.saver = Saver(self, saver_client)
        self.saver.start()

    @classmethod
    def open(
        cls,
        make_client: ClientFactory,
        client: ServiceClient,
        job_id: str,
        *,
        journal_folder: Path,
        reviewer: str,
        settings: ReviewSettings,
    ) -> RemoteReviewSession:
        """Take the job's lease (the journal's own, when a killed client left one) and
        its draft, with what the journal kept applied."""
        journal = Journal(journal_folder, client.server, client.user, job_id)
        kept = journal.load()
        lease = None
        if kept is not None and isinstance(kept.get("lease"), str):
            with contextlib.suppress(ReviewConflict):
                lease = client.take_lease(job_id, kept["lease"])["lease"]
        if lease is None:
            lease = client.take_lease(job_id)["lease"]
        try:
            job = job_from_row(client.job(job_id))
            draft = client.draft(job_id)
            return cls(
                client,
                make_client(),
                job,
                draft,
                lease=lease,
                journal=journal,
                reviewer=reviewer,
                settings=settings,
                kept=kept,
            )
        except BaseException:
            with contextlib.suppress(ServiceError):
                client.release_lease(job_id, lease)
            raise

    def _resume(self, draft: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
        """What a killed client left: sent again if the draft is still at its revision."""
        edits = kept["edits"]
        if edits and edits[-1].get("text_sha256") == _digest(draft["text"]):
            return draft  # the server took them all before the client died
        done = replay(draft, kept) if kept.get("base") == draft["revision"] else None
        if done is None:
            if edits:
                self.notice = ("conflict", {"file": str(self.journal.set_aside())})
            return draft
        self.pending.edits, self.pending.dirty = done[1], True
        if edits:
            self.notice = ("resumed", {})
        return done[0]

    # -- what the base class keeps -----------------------------------------------------

    def save(self) -> None:
        with self._lock:
            self.pending.dirty = True
            self._changed()

    def _edited(self, before: dict[str, Any], start: int, end: int, text: str, kind: str) -> None:
        edit = {"start": start, "end": end, "replacement": text, "kind": kind}
        with self._lock:
            self.pending.edits.append({**edit, "text_sha256": _digest(self.text)})
            self._changed()

    def _changed(self) -> None:
        """Journal first (a kill now loses nothing), then wake the saver."""
        self.pending.version += 1
        self.journal.write(self.pending, self.draft, self.cursor)
        self._lock.notify_all()

    def sync_note(self) -> str | None:
        return self.saver.note()

    def clip(self, start: float, end: float, speed: float) -> np.ndarray | None:
        return wav_samples(self.client.audio(self.job.id, start, end, speed))

    def snapshot(self) -> tuple[Pending, dict[str, Any]]:
        """What the saver sends now (taken under the lock)."""
        pending = Pending(
            self.pending.lease,
            self.pending.base,
            list(self.pending.edits),
            True,
            self.pending.version,
        )
        body = {
            "revision": pending.base,
            "edits": [
                {k: e[k] for k in ("start", "end", "replacement", "kind")} for e in pending.edits
            ],
            "fields": dict(self.draft.get("fields") or {}),
            "cursor": self.cursor,
            "looked_at": looked_at(self.draft),
        }
        if pending.edits:
            body["text_sha256"] = pending.edits[-1]["text_sha256"]
        return pending, body

    def confirmed(self, sent: Pending, revision: int) -> None:
        """The server took ``sent``: drop those edits, move to its revision."""
        with self._lock:
            self.pending.edits = self.pending.edits[len(sent.edits) :]
            self.pending.base = revision
            if not self.pending.edits and self.pending.version == sent.version:
                self.pending.dirty = False
            self.journal.write(self.pending, self.draft, self.cursor)
            self._lock.notify_all()

    # -- leaving -----------------------------------------------------------------------

    def flush(self, timeout_s: float = FLUSH_S) -> None:
        """Wait until the server has every edit; a one-line error when it cannot."""
        with self._lock:
            self._lock.notify_all()
            deadline = time.monotonic() + timeout_s
            while not self.pending.empty and self.saver.state in ("ok", "offline"):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(min(left, 0.5))
            if self.pending.empty:
                return
        raise StateError(self.saver.problem() or "your last edits are not on the server yet")

    def approve(self) -> Job:
        self.save()
        self.flush()
        try:
            row = self.client.approve(self.job.id, self.pending.lease, revision=self.pending.base)
        except ReviewConflict as exc:
            raise StateError(exc.message) from None
        self.job = job_from_row(row)
        self._finish(release=False)
        return self.job

    def send_back(self, question: str) -> Job:
        self.save()
        self.flush()
        try:
            row = self.client.send_back(self.job.id, self.pending.lease, question)
        except ReviewConflict as exc:
            raise StateError(exc.message) from None
        self.job = job_from_row(row)
        self._finish(release=False)
        return self.job

    def close(self) -> None:
        """Send what is left, give the lease back; edits the server did not take stay
        in the journal for next time. Safe to call twice."""
        if self.closed:
            return
        if self.draft.get("cursor") != self.cursor:
            self.save()
        with contextlib.suppress(StateError):
            self.flush(timeout_s=5.0)
        self._finish(release=self.pending.empty)

    def _finish(self, *, release: bool) -> None:
        self.closed = True
        self.saver.stop()
        if self.pending.empty:
            self.journal.clear()
            if release:
                with contextlib.suppress(ServiceError):
                    self.client.release_lease(self.job.id, self.pending.lease)
        shutil.rmtree(self.scratch, ignore_errors=True)


class Saver(threading.Thread):
    """Sends a session's edits in the background and keeps its lease alive."""

    def __init__(self, session: RemoteReviewSession, client: ServiceClient) -> None:
        super().__init__(name=f"saver-{session.job.id}", daemon=True)
        self.session = session
        self.client = client
        self.state = "ok"  # ok | offline | lease_lost | conflict
        self.detail = ""
        self._stopping = False
        self._renewed_at = time.monotonic()

    def note(self) -> str | None:
        """The header's word on the saves (None: everything is on the server)."""
        if self.state != "ok":
            return self.state
        return None if self.session.pending.empty else "saving"

    def problem(self) -> str | None:
        return {
            "offline": f"the server cannot be reached ({self.detail}); your edits are kept here",
            "lease_lost": f"the job was taken over ({self.detail}); your edits are kept here",
            "conflict": f"the draft changed on the server; your edits are kept in {self.detail}",
        }.get(self.state)

    def stop(self) -> None:
        with self.session._lock:
            self._stopping = True
            self.session._lock.notify_all()
        if self is not threading.current_thread() and self.is_alive():
            self.join(timeout=10)
        self.client.http.close()

    def run(self) -> None:
        lock = self.session._lock
        while True:
            with lock:
                if self.session.pending.empty and not self._stopping:
                    lock.wait(timeout=RENEW_S)
                while self.state == "conflict" and not self._stopping:
                    lock.wait()  # nothing more is sent: the job must be reopened
                if self._stopping:
                    return
                work = None if self.session.pending.empty else self.session.snapshot()
            try:
                if work is None:
                    self._renew()
                else:
                    self._send(*work)
            except TranscribeError as exc:  # unreachable, or the job is gone for this account
                self._offline(exc.message)
            except Exception as exc:  # a bug: said, logged, retried; edits stay journaled
                log.exception("review saver")
                self._offline(type(exc).__name__)

    def _renew(self) -> None:
        if self.state == "ok" and time.monotonic() - self._renewed_at < RENEW_S:
            return
        pending = self.session.pending
        try:
            self.client.take_lease(self.session.job.id, pending.lease)
        except ReviewConflict:
            self._regain(pending.base)
            return
        self._renewed_at = time.monotonic()
        self.state, self.detail = "ok", ""

    def _send(self, sent: Pending, body: dict[str, Any]) -> None:
        try:
            answer = self.client.save(self.session.job.id, sent.lease, body)
        except ReviewConflict:
            try:
                self.client.take_lease(self.session.job.id, sent.lease)
            except ReviewConflict:
                self._regain(sent.base)  # the lease is gone
            else:
                self._conflict()  # the lease is alive: the draft changed under it
            return
        self._renewed_at = time.monotonic()
        self.state, self.detail = "ok", ""
        self.session.confirmed(sent, int(answer["revision"]))

    def _regain(self, base: int) -> None:
        """The lease was lost: take a new one if nobody holds the job; the edits go on
        only if the draft is still at ``base``."""
        try:
            lease = self.client.take_lease(self.session.job.id)
        except ReviewConflict as exc:
            self.state, self.detail = "lease_lost", exc.message.split(": ", 1)[-1]
            self._pause()
            return
        with self.session._lock:
            self.session.pending.lease = lease["lease"]
            self.session.journal.write(
                self.session.pending, self.session.draft, self.session.cursor
            )
        self._renewed_at = time.monotonic()
        if int(lease["revision"]) != base:
            self._conflict()
        else:
            self.state, self.detail = "ok", ""

    def _conflict(self) -> None:
        with self.session._lock:
            self.state, self.detail = "conflict", str(self.session.journal.set_aside())
            self.session._lock.notify_all()

    def _offline(self, detail: str) -> None:
        self.state, self.detail = "offline", detail
        self._pause()

    def _pause(self) -> None:
        with self.session._lock:
            self.session._lock.notify_all()
            if not self._stopping:
                self.session._lock.wait(timeout=RETRY_S)


# -- the queue and opening jobs -------------------------------------------------------


@dataclass
class RemoteWorkplace:
    """A server's review queue, for one secretary account."""

    client: ServiceClient
    make_client: ClientFactory
    reviewer: str
    settings: ReviewSettings
    journal_folder: Path

    def queue(self) -> list[QueueEntry]:
        now = time.time()
        entries = []
        for row in self.client.review_queue():
            job = job_from_row(row)
            entries.append(
                QueueEntry(
                    job, int(row.get("doubtful") or 0), now - job.created_at, row.get("locked_by")
                )
            )
        return entries

    def open(self, job_id: str) -> RemoteReviewSession:
        return RemoteReviewSession.open(
            self.make_client,
            self.client,
            job_id,
            journal_folder=self.journal_folder,
            reviewer=self.reviewer,
            settings=self.settings,
        )


def no_password() -> str:
    """A client inside the review loop never asks for a password mid-screen: the token
    is renewed by use (a save or a renewal every few seconds), so it only expires when
    the computer slept longer than the server's session."""
    raise ServiceError("the login expired", hint="leave the review and start it again")


def remote_workplace(
    client: ServiceClient, settings: ReviewSettings, *, journal_folder: Path | None = None
) -> RemoteWorkplace:
    """The review loop's view of a server, logged in first (a prompt, if one is needed,
    comes before the screen)."""
    from ..service.client import config_folder

    client.logged_in()
    client.password = no_password
    return RemoteWorkplace(
        client,
        lambda: client.sibling(no_password),
        reviewer=client.user,
        settings=settings,
        journal_folder=journal_folder or config_folder() / "review",
    )
