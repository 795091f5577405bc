"""The review session: everything the secretary does to one job, without a terminal.

A :class:`ReviewSession` holds the job's draft (``work/jobs/<job>/draft.json``) and
its review lock. Every edit is saved (atomically) the moment it is made, together
with its entry in ``corrections.json``, so a crash or a closed terminal loses
nothing and the next session resumes at the same place. The terminal UI only draws
this model and maps keys to its methods; tests drive it directly.

:class:`DraftReview` is what a session is wherever the draft lives: the cursor, the
doubtful words, sentences, fields and the audio window. :class:`ReviewSession` keeps
the draft in the local workspace; :class:`~transcribe.review.remote.RemoteReviewSession`
keeps it on a server (``review --server``). Both make every edit with
:func:`~transcribe.draft.apply_edit`, so the two loops cannot drift apart.

Conventions, as stored in ``draft.json``:

* ``cursor`` is a **character offset** into ``text`` (it survives edits better than
  a word index, since text the secretary types has no Whisper word).
* A **segment** (next/previous, inline edit) is a sentence of the text: it ends
  after ``.``, ``!``, ``?`` or ``…`` followed by a space, or at a line break.
  Whisper's own segments do not survive edits; sentences do.
* A **doubtful** word is a Whisper word still present in the text (``span`` not
  null), not yet ``checked``, whose probability is below the threshold or which the
  lexicon or learned corrections replaced (``source``). A word becomes
  ``"checked": true`` when an edit covers it: it no longer counts as doubtful.
* An **unreliable passage** (``draft["unreliable"]``) is a run of words Whisper
  could not transcribe reliably (it kept repeating itself or its prompt). It is
  shown in its own colour, comes first when going to the next doubtful word, and
  becomes ``checked`` when the cursor enters it; approval waits for every one.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import Config
from ..draft import TOKEN, apply_edit, load_draft, passage_span, save_draft
from ..errors import ConfigError, StateError
from ..stages.transcription import audio_file, draft_path, job_dir
from ..store import Job, JobState, JobStore, open_store
from .approval import (
    approve_job,
    field_key,
    letter_fields,
    missing_fields,
    record_edit,
    send_back,
)
from .audio import decode_window
from .settings import ReviewSettings

log = logging.getLogger(__name__)

LOCK_REFRESH_S = 15.0
CURSOR_SAVE_S = 2.0
MARKED_SOURCES = ("lexicon", "learned")
SENTENCE_END = re.compile(r"[.!?…]+[\"»)\]]*(?=\s)|\n")
# "Dr. Patel", "M. Durand": a title's full stop does not end a sentence
ABBREVIATION = re.compile(r"(?:^|\W)(?:Dr|Drs|Mr|Mrs|Ms|Mme|Mmes|Mlle|Me|Pr|St|M|cf|etc|No|n°)$")

Span = tuple[int, int]


@dataclass(frozen=True)
class FieldRow:
    """One line of the fields panel."""

    name: str
    value: str
    required: bool
    automatic: bool = False


def is_doubtful(word: dict[str, Any], threshold: float) -> bool:
    if not word.get("span") or word.get("checked"):
        return False
    return word.get("source") in MARKED_SOURCES or float(word.get("probability", 1.0)) < threshold


def count_doubtful(draft: dict[str, Any], threshold: float) -> int:
    """Doubtful places (words replaced together as one block count once)."""
    return len({tuple(w["span"]) for w in draft["words"] if is_doubtful(w, threshold)})


def sentence_spans(text: str) -> list[Span]:
    """Sentences and lines of ``text``, without their surrounding blanks."""
    spans: list[Span] = []
    start = 0
    for match in SENTENCE_END.finditer(text):
        if ABBREVIATION.search(text, 0, match.start()) and match.group() == ".":
            continue
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for a, b in spans:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        tail = len(piece.rstrip())
        if tail > lead:
            trimmed.append((a + lead, a + tail))
    return trimmed


class DraftReview:
    """One job's draft as the secretary moves through it and edits it; where the draft
    is kept, locked and saved is the subclass's (:meth:`_edited`, :meth:`save`,
    :meth:`touch`, :meth:`clip`, :meth:`approve`, :meth:`send_back`, :meth:`close`)."""

    #: the job's private folder on this machine: played clips and the editor's file
    scratch: Path
    #: what the screen says once when the job opens: a message key and its values
    notice: tuple[str, dict[str, str]] | None = None

    def __init__(
        self,
        job: Job,
        draft: dict[str, Any],
        template: Any | None,
        *,
        reviewer: str,
        settings: ReviewSettings,
    ) -> None:
        self.job = job
        self.draft = draft
        self.template = template
        self.reviewer = reviewer
        self.settings = settings
        self.cursor = min(max(int(self.draft.get("cursor") or 0), 0), len(self.text))
        self.closed = False
        self._cursor_saved_at = time.monotonic()

    # -- what the subclass keeps ------------------------------------------------------

    def touch(self) -> None:
        """Keep the job's lock or lease alive while the secretary works."""

    def save(self) -> None:
        """Keep the draft as it is now (text, fields, cursor, passages looked at)."""
        raise NotImplementedError

    def _edited(self, before: dict[str, Any], start: int, end: int, text: str, kind: str) -> None:
        """Keep an edit just applied to :attr:`draft` (``before`` is the draft it was
        made on)."""
        raise NotImplementedError

    def clip(self, start: float, end: float, speed: float) -> np.ndarray | None:
        """Mono 16 kHz samples of ``[start, end)`` at ``speed``; None without audio."""
        raise NotImplementedError

    def approve(self) -> Job:
        raise NotImplementedError

    def send_back(self, question: str) -> Job:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def sync_note(self) -> str | None:
        """A message-key for the header while edits are not yet where they are kept
        (``None`` when everything is saved)."""
        return None

    # -- state ------------------------------------------------------------------

    @property
    def text(self) -> str:
        return str(self.draft["text"])

    @property
    def words(self) -> list[dict[str, Any]]:
        return list(self.draft["words"])

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.draft.get("fields") or {})

    def _moved(self) -> None:
        """Positions are saved too, but not at every key press; an unreliable passage
        the cursor enters is marked as looked at (and that is saved at once)."""
        self.touch()
        if self._look_at_passage() or time.monotonic() - self._cursor_saved_at >= CURSOR_SAVE_S:
            self.save()
            self._cursor_saved_at = time.monotonic()

    def _look_at_passage(self) -> bool:
        seen = False
        for passage, (a, b) in self.unreliable_spans():
            if not passage.get("checked") and a <= self.cursor < b:
                passage["checked"] = True
                seen = True
        return seen

    # -- positions -----------------------------------------------------------------

    def tokens(self) -> list[Span]:
        return [(m.start(), m.end()) for m in TOKEN.finditer(self.text)]

    def word_at(self, offset: int) -> int | None:
        """Index of the Whisper word whose text covers ``offset``."""
        for index, word in enumerate(self.draft["words"]):
            span = word.get("span")
            if span and span[0] <= offset < span[1]:
                return index
        return None

    def current_range(self) -> Span:
        """What "the current word" is: a Whisper word's span, else the token, else empty."""
        index = self.word_at(self.cursor)
        if index is not None:
            a, b = self.draft["words"][index]["span"]
            return a, b
        for a, b in self.tokens():
            if a <= self.cursor < b:
                return a, b
        return self.cursor, self.cursor

    def current_word(self) -> dict[str, Any] | None:
        """The Whisper word at or before the cursor (for the audio), if any."""
        placed = [w for w in self.draft["words"] if w.get("span")]
        before = [w for w in placed if w["span"][0] <= self.cursor]
        if before:
            return max(before, key=lambda w: w["span"][0])
        return placed[0] if placed else None

    def doubtful_spans(self) -> list[Span]:
        spans = {
            (w["span"][0], w["span"][1])
            for w in self.draft["words"]
            if is_doubtful(w, self.settings.threshold)
        }
        return sorted(spans | {span for p, span in self.unreliable_spans() if not p["checked"]})

    def unreliable_spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Unreliable passages still in the text, with the text they became."""
        found = []
        for passage in self.draft.get("unreliable", ()):
            span = passage_span(self.draft, passage)
            if span is not None:
                found.append((passage, span))
        return found

    def unchecked_passages(self) -> int:
        return sum(1 for passage in self.draft.get("unreliable", ()) if not passage["checked"])

    def _go(self, starts: list[int], forward: bool, *, wrap: bool) -> str:
        """Move to the next/previous start; returns "moved", "wrapped" or "none"."""
        here = self.current_range()[0] if not forward else self.cursor
        after = [s for s in starts if s > here] if forward else [s for s in starts if s < here]
        if after:
            self.cursor = after[0] if forward else after[-1]
            result = "moved"
        elif wrap and starts and (starts[0] if forward else starts[-1]) != self.cursor:
            self.cursor = starts[0] if forward else starts[-1]
            result = "wrapped"
        else:
            result = "none"
        self._moved()
        return result

    def next_doubtful(self) -> str:
        return self._go([a for a, _ in self.doubtful_spans()], True, wrap=True)

    def prev_doubtful(self) -> str:
        return self._go([a for a, _ in self.doubtful_spans()], False, wrap=True)

    def next_word(self) -> str:
        return self._go([a for a, _ in self.tokens()], True, wrap=False)

    def prev_word(self) -> str:
        return self._go([a for a, _ in self.tokens()], False, wrap=False)

    def segments(self) -> list[Span]:
        return sentence_spans(self.text)

    def current_segment(self) -> Span:
        segments = self.segments()
        if not segments:
            return self.cursor, self.cursor
        for a, b in segments:
            if self.cursor < b or (a, b) == segments[-1]:
                return a, b
        return segments[-1]

    def next_segment(self) -> str:
        end = self.current_segment()[1]
        starts = [a for a, _ in self.segments() if a >= end]
        return self._go(starts, True, wrap=False)

    def prev_segment(self) -> str:
        current = self.current_segment()[0]
        if self.cursor > current:
            self.cursor = current
            self._moved()
            return "moved"
        return self._go([a for a, _ in self.segments()], False, wrap=False)

    # -- edits (each saved at once) ---------------------------------------------------

    def replace_range(self, start: int, end: int, replacement: str, *, kind: str) -> None:
        """Replace ``text[start:end]``; covered words become checked; kept at once."""
        self.touch()
        before = self.draft
        self.draft = apply_edit(before, start, end, replacement)
        self.cursor = start
        self._edited(before, start, end, replacement, kind)

    def edit_word(self, replacement: str) -> None:
        start, end = self.current_range()
        self.replace_range(start, end, replacement, kind="word")

    def edit_segment(self, replacement: str) -> None:
        start, end = self.current_segment()
        self.replace_range(start, end, replacement, kind="sentence")

    def replace_text(self, new_text: str) -> bool:
        """The whole text, as an editor returns it; only the changed middle is an edit."""
        old = self.text
        if new_text == old:
            return False
        prefix = 0
        limit = min(len(old), len(new_text))
        while prefix < limit and old[prefix] == new_text[prefix]:
            prefix += 1
        suffix = 0
        while suffix < limit - prefix and old[-1 - suffix] == new_text[-1 - suffix]:
            suffix += 1
        self.replace_range(
            prefix, len(old) - suffix, new_text[prefix : len(new_text) - suffix], kind="text"
        )
        return True

    # -- fields ---------------------------------------------------------------------

    def field_rows(self) -> list[FieldRow]:
        """The template's fields (required first), then other fields the draft holds."""
        fields = {field_key(k): v for k, v in self.fields.items()}
        rows: list[FieldRow] = []
        if self.template is not None:
            body = self.template.body_field
            for name in self.template.required:
                if name != body:
                    rows.append(FieldRow(name, fields.get(field_key(name), ""), True))
            for name in self.template.optional:
                if name != body:
                    auto = field_key(name) == "date"
                    rows.append(FieldRow(name, fields.get(field_key(name), ""), False, auto))
        listed = {field_key(r.name) for r in rows}
        rows += [FieldRow(k, v, False) for k, v in fields.items() if k not in listed]
        return rows

    def resolve_field(self, answer: str) -> str:
        """A field by its number in :meth:`field_rows` or by name."""
        answer = answer.strip()
        rows = self.field_rows()
        if answer.isdigit() and 1 <= int(answer) <= len(rows):
            return rows[int(answer) - 1].name
        if not answer:
            missing = self.missing()
            if missing:
                return missing[0]
            raise ConfigError("no field named")
        key = field_key(answer)
        if any(field_key(r.name) == key for r in rows) or self.template is None:
            return key
        raise ConfigError(f"no field {answer!r} in this letter")

    def set_field(self, name: str, value: str) -> None:
        self.touch()
        key = field_key(name)
        fields = {field_key(k): v for k, v in self.fields.items()}
        if value.strip():
            fields[key] = value.strip()
        else:
            fields.pop(key, None)
        self.draft = {**self.draft, "fields": fields}
        self.save()

    def missing(self) -> tuple[str, ...]:
        return missing_fields(self.template, self.fields)

    # -- audio ------------------------------------------------------------------------

    def audio_window(self, *, replay: bool = False) -> tuple[float, float]:
        """Seconds to play around the current word; ``replay`` starts further back."""
        word = self.current_word()
        context = self.settings.context_s
        if word is None:
            return 0.0, 2 * context + 3.0
        back = self.settings.replay_s if replay else context
        return max(0.0, float(word["start"]) - back), float(word["end"]) + context


class ReviewSession(DraftReview):
    """One job of the local workspace open for review by one reviewer, under its review
    lock; use :meth:`open`, then :meth:`close`. Every change is written at once."""

    def __init__(
        self,
        config: Config,
        store: JobStore,
        job: Job,
        *,
        reviewer: str,
        settings: ReviewSettings,
    ) -> None:
        self.config = config
        self.store = store
        self.path = draft_path(config, job)
        super().__init__(
            job,
            load_draft(self.path),
            letter_fields(config, job),
            reviewer=reviewer,
            settings=settings,
        )
        self.scratch = job_dir(config, job)
        self._locked_at = time.monotonic()

    @classmethod
    def open(
        cls, config: Config, job_id: str, *, reviewer: str, settings: ReviewSettings
    ) -> ReviewSession:
        """Lock the job to ``reviewer`` (refused while someone else holds it)."""
        store = open_store(config, actor=reviewer)
        try:
            job = store.get(job_id)
            if job.state != JobState.REVIEW:
                raise StateError(f"job {job_id} is {job.state}, not review")
            if not draft_path(config, job).is_file():
                raise StateError(f"job {job_id} has no draft")
            job = store.lock_for_review(job_id, reviewer, timeout_s=settings.lock_timeout_s)
            try:
                return cls(config, store, job, reviewer=reviewer, settings=settings)
            except BaseException:
                store.unlock_review(job_id, reviewer)
                raise
        except BaseException:
            store.close()
            raise

    def touch(self) -> None:
        """Refresh the lock (at most every few seconds): it expires only when idle."""
        if time.monotonic() - self._locked_at < LOCK_REFRESH_S:
            return
        self.job = self.store.lock_for_review(
            self.job.id, self.reviewer, timeout_s=self.settings.lock_timeout_s
        )
        self._locked_at = time.monotonic()

    def save(self) -> None:
        """Write the draft (text, fields, cursor) atomically."""
        self.draft = {**self.draft, "cursor": self.cursor}
        save_draft(self.path, self.draft)
        self._cursor_saved_at = time.monotonic()

    def _edited(self, before: dict[str, Any], start: int, end: int, text: str, kind: str) -> None:
        self.save()
        record_edit(
            self.config,
            self.job,
            before,
            self.text,
            reviewer=self.reviewer,
            kind=kind,
            start=start,
            end=end,
            replacement=text,
        )

    def close(self) -> None:
        """Save the position and release the lock; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.draft.get("cursor") != self.cursor and self.path.is_file():
                self.save()
            self.store.unlock_review(self.job.id, self.reviewer)
        finally:
            self.store.close()

    def audio_file(self) -> Path | None:
        return audio_file(self.config, self.job)

    def clip(self, start: float, end: float, speed: float) -> np.ndarray | None:
        audio = self.audio_file()
        return None if audio is None else decode_window(audio, start, end, speed=speed)

    # -- leaving ----------------------------------------------------------------------

    def approve(self) -> Job:
        """Approve (see :func:`approve_job`); the session is closed afterwards."""
        self.touch()
        self.save()
        job = approve_job(self.config, self.job.id, reviewer=self.reviewer)
        self.job = job
        self.close()
        return job

    def send_back(self, question: str) -> Job:
        self.touch()
        self.save()
        job = send_back(self.config, self.job.id, question, reviewer=self.reviewer)
        self.job = job
        self.close()
        return job


class Workplace(Protocol):
    """Where the review loop finds its queue and opens jobs: the local workspace
    (:class:`LocalWorkplace`) or a server (:class:`~transcribe.review.remote.RemoteWorkplace`)."""

    reviewer: str

    def queue(self) -> list[Any]: ...

    def open(self, job_id: str) -> DraftReview: ...


@dataclass
class LocalWorkplace:
    """The workspace on this machine: its store, drafts and audio."""

    config: Config
    reviewer: str
    settings: ReviewSettings

    def queue(self) -> list[Any]:
        from .queue import review_queue

        return list(review_queue(self.config, self.settings))

    def open(self, job_id: str) -> DraftReview:
        return ReviewSession.open(
            self.config, job_id, reviewer=self.reviewer, settings=self.settings
        )
