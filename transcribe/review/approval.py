"""Approving a reviewed job, or sending it back to its author: the library side.

Both the review loop and ``transcribe approve`` call :func:`approve_job`, so the
checks (state, lock, required fields) and the files it leaves are the same however
a letter is approved. Files in ``work/jobs/<job>/``:

* ``approved.json`` — the approved text and fields, who approved, when. The letter
  stage (:func:`transcribe.stages.letter.finish_approved`) reads it: ``approve`` runs it at
  once, and ``watch``/``batch`` pick up jobs approved in the review loop.
* ``corrections.json`` — the first draft's text, every edit as it was made, and the
  word-aligned diff of first draft -> current text, for learning.
* ``query.json`` — the question sent back to the author (it may name a patient,
  so it stays in the job's folder, never in the job store).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from ..config import Config
from ..draft import TOKEN, load_draft, save_draft, unchecked_passages, with_text
from ..errors import ConfigError, StateError, TranscribeError
from ..fsutil import atomic_write_json
from ..stages.transcription import draft_path, job_dir
from ..store import Job, JobState, JobStore, open_store, reviewer_name
from ..store.audit import operator_id
from .settings import load_settings

log = logging.getLogger(__name__)

APPROVED_NAME = "approved.json"
CORRECTIONS_NAME = "corrections.json"
QUERY_NAME = "query.json"
LEARNED_NAME = "learned.json"
AUTOMATIC_FIELDS = frozenset({"date"})


class MissingFields(ConfigError):
    """Required fields of the client's template are empty."""


def reviewer_id() -> str:
    """Who is reviewing, as the lock and the audit log show it: ``user@host``."""
    return operator_id()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- fields ---------------------------------------------------------------------


def field_key(name: str) -> str:
    """Canonical snake_case field name (the documents package's rule)."""
    from ..documents import field_key as canonical

    try:
        return canonical(name)
    except TranscribeError as exc:
        raise ConfigError(f"bad field name {name!r}: {exc.message}") from None


def template_path(config: Config, job: Job) -> Path | None:
    """The client's letter template, or None when the client has none."""
    client = config.client(job.client)
    if client is None or not client.template:
        return None
    return config.paths.templates / job.client / client.template


def letter_fields(config: Config, job: Job) -> Any | None:
    """The template's :class:`~transcribe.documents.TemplateFields`, None without one."""
    path = template_path(config, job)
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(
            f"template {path} of client {job.client} is missing",
            hint="see `transcribe templates check`",
        )
    from ..documents import template_fields

    return template_fields(path)


def missing_fields(template: Any | None, fields: Mapping[str, str]) -> tuple[str, ...]:
    """Required fields still empty (the body and automatic fields excepted)."""
    if template is None:
        return ()
    filled = [name for name, value in fields.items() if str(value).strip()]
    return tuple(n for n in template.missing(filled) if field_key(n) not in AUTOMATIC_FIELDS)


def parse_field_args(items: Iterable[str]) -> dict[str, str]:
    """``["patient=Jane Doe", ...]`` from ``--field k=v`` options, names canonical."""
    fields: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--field {item!r}: expected name=value")
        fields[field_key(name)] = value.strip()
    return fields


def read_text_arg(path: Path) -> str:
    """The approved text from ``--text-file`` (``-``: standard input)."""
    import sys

    try:
        if str(path) == "-":
            return sys.stdin.read()
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read --text-file {path}: {exc}") from None


# -- corrections ----------------------------------------------------------------


def corrections_path(config: Config, job: Job) -> Path:
    return job_dir(config, job) / CORRECTIONS_NAME


def load_corrections(config: Config, job: Job, draft: Mapping[str, Any]) -> dict[str, Any]:
    """The corrections record, started from ``draft`` (the first draft) if absent."""
    import json

    path = corrections_path(config, job)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {
        "schema": 1,
        "job_id": job.id,
        "original_text": draft["text"],
        "original_spans": [w.get("span") for w in draft["words"]],
        "edits": [],
        "diff": [],
    }


def word_diff(before: str, after: str, spans: list[Any] | None = None) -> list[dict[str, Any]]:
    """Word-aligned changes from ``before`` to ``after``, each with the draft words
    (indices into ``draft["words"]``) whose original span it covers."""
    old = list(TOKEN.finditer(before))
    new = list(TOKEN.finditer(after))
    matcher = SequenceMatcher(
        None, [m.group() for m in old], [m.group() for m in new], autojunk=False
    )
    changes = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start = old[i1].start() if i1 < len(old) else len(before)
        end = old[i2 - 1].end() if i2 > i1 else start
        words = [
            index
            for index, span in enumerate(spans or [])
            if span and span[0] < max(end, start + 1) and span[1] > start
        ]
        changes.append(
            {
                "op": tag,
                "before": before[start:end],
                "after": after[new[j1].start() : new[j2 - 1].end()] if j2 > j1 else "",
                "at": start,
                "words": words,
            }
        )
    return changes


def record_edit(
    config: Config,
    job: Job,
    before_draft: Mapping[str, Any],
    text: str,
    *,
    reviewer: str,
    kind: str,
    start: int,
    end: int,
    replacement: str,
) -> None:
    """Append one edit and recompute the diff against the first draft, atomically."""
    record = load_corrections(config, job, before_draft)
    record["edits"].append(
        {
            "at": _now(),
            "reviewer": reviewer,
            "kind": kind,
            "start": start,
            "end": end,
            "before": before_draft["text"][start:end],
            "after": replacement,
        }
    )
    record["diff"] = word_diff(record["original_text"], text, record.get("original_spans"))
    atomic_write_json(corrections_path(config, job), record)


def _final_corrections(
    config: Config, job: Job, draft: Mapping[str, Any], text: str, reviewer: str
) -> str:
    """Write the corrections record as approved; returns the first draft's text."""
    record = load_corrections(config, job, draft)
    if text != draft["text"]:
        record["edits"].append(
            {
                "at": _now(),
                "reviewer": reviewer,
                "kind": "approve",
                "start": 0,
                "end": len(draft["text"]),
                "before": draft["text"],
                "after": text,
            }
        )
    record["diff"] = word_diff(record["original_text"], text, record.get("original_spans"))
    record["approved"] = True
    atomic_write_json(corrections_path(config, job), record)
    return str(record["original_text"])


# Fields that identify the person a letter is about (patient, client, matter): their
# values are never learnt. A recipient (a colleague) is vocabulary and may be.
PRIVATE_FIELD_HINTS = (
    "patient",
    "matter",
    "dossier",
    "affaire",
    "client",
    "naissance",
    "dob",
    "birth",
    "address",
    "adresse",
    "hospital",
    "reference",
)


def private_values(fields: Mapping[str, str]) -> list[str]:
    return [v for k, v in fields.items() if any(h in k for h in PRIVATE_FIELD_HINTS)]


def record_learning(
    config: Config,
    job: Job,
    original: str,
    approved: str,
    lang: str,
    *,
    private: Iterable[str] = (),
) -> None:
    """Feed the learning store (never with the letter's personal field values); a
    failure there never blocks an approval."""
    from ..vocabulary.learning import LearningStore

    try:
        LearningStore(config.paths.home / LEARNED_NAME).record(
            job.client, job.author, original, approved, lang=lang, exclude=private
        )
    except (TranscribeError, OSError, ValueError) as exc:
        log.warning("job %s: corrections not learnt: %s", job.id, exc)


def record_author_terms(
    config: Config, job: Job, text: str, draft: Mapping[str, Any], fields: Mapping[str, str]
) -> None:
    """Count the approved letter's terms for its author, never a word of the draft's
    or the approved fields' values; a failure there never blocks an approval."""
    from ..vocabulary.authors import learn_author_terms

    client = config.client(job.client)
    try:
        learn_author_terms(
            config.paths.home,
            job.client,
            job.author,
            text,
            domain=client.domain if client else "general",
            lang=draft.get("language") or "fr",
            private=[*draft.get("fields", {}).values(), *fields.values()],
        )
    except (TranscribeError, OSError, ValueError) as exc:
        log.warning("job %s: author terms not learnt: %s", job.id, exc)


# -- approval and query -----------------------------------------------------------


def _check_reviewable(store: JobStore, job: Job, reviewer: str, timeout_s: float) -> None:
    if job.state != JobState.REVIEW:
        raise StateError(f"job {job.id} is {job.state}, not review")
    fresh = job.review_lock_at is not None and time.time() - job.review_lock_at < timeout_s
    if job.review_lock and job.review_lock != reviewer and fresh:
        raise StateError(
            f"job {job.id} is being reviewed by {reviewer_name(job.review_lock)}",
            hint=f"the lock expires {timeout_s / 60:.0f} min after their last action",
        )


def _checked_text(text: str) -> str:
    if not text.strip():
        raise ConfigError("the approved text is empty")
    return text


def approve_job(
    config: Config,
    job_id: str,
    *,
    text: str | None = None,
    fields: Mapping[str, str] | None = None,
    reviewer: str,
    accept_unreliable: bool = False,
    lock: str | None = None,
) -> Job:
    """Approve a job in review: text and fields checked, saved, state -> approved.

    ``text`` replaces the draft's text and ``fields`` are merged over the draft's;
    both default to what the draft holds. Rendering is the next stage's business.
    A passage Whisper could not transcribe reliably must have been looked at (the
    review loop marks it when the secretary goes there) or accepted explicitly
    (``accept_unreliable``, audited). ``lock`` is who holds the review lock when that
    is not ``reviewer`` itself (the service's ``NAME#LEASE``).
    """
    timeout_s = load_settings(config.paths.home).lock_timeout_s
    holder = lock or reviewer
    with open_store(config, actor=reviewer) as store:
        job = store.get(job_id)
        _check_reviewable(store, job, holder, timeout_s)
        path = draft_path(config, job)
        if not path.is_file():
            raise StateError(f"job {job_id} has no draft")
        draft = load_draft(path)
        unchecked = unchecked_passages(draft)
        if unchecked and not accept_unreliable:
            raise StateError(
                f"job {job_id} cannot be approved: {len(unchecked)} unreliable passage(s) "
                "not looked at yet",
                hint="go to them in the review loop (key u), or approve with "
                "--accept-unreliable after listening",
            )
        if unchecked:
            store.record("accept-unreliable", job.id, f"{len(unchecked)} passage(s) accepted")
        merged = _merge_fields(config, job, draft["fields"], fields or {})
        missing = missing_fields(letter_fields(config, job), merged)
        if missing:
            raise MissingFields(
                f"job {job_id} cannot be approved: required field(s) missing: "
                + ", ".join(missing),
                hint="fill them in the review, or give --field name=value",
            )
        new_text = _checked_text(draft["text"] if text is None else text)
        original = _final_corrections(config, job, draft, new_text, reviewer)
        save_draft(path, {**with_text(draft, new_text), "fields": merged})
        _write_approved(config, job, new_text, merged, reviewer, draft.get("language"))
        job = store.transition(job.id, JobState.APPROVED, expect=JobState.REVIEW)
        store.unlock_review(job.id, holder)
        job = store.get(job.id)
    record_learning(
        config,
        job,
        original,
        new_text,
        draft.get("language") or "fr",
        private=private_values(merged),
    )
    record_author_terms(config, job, new_text, draft, merged)
    return job


def _merge_fields(
    config: Config, job: Job, current: Mapping[str, str], given: Mapping[str, str]
) -> dict[str, str]:
    """Draft fields overlaid with ``given``; a name the template never uses is a typo."""
    template = letter_fields(config, job) if given else None
    if template is not None:
        unknown = template.unknown(given)
        if unknown:
            raise ConfigError(
                f"field(s) not in the {job.client} template: {', '.join(unknown)}",
                hint="see `transcribe templates check " + job.client + "`",
            )
    merged = {**current, **{field_key(k): v for k, v in given.items()}}
    return {k: v for k, v in merged.items() if str(v).strip()}


def _write_approved(
    config: Config,
    job: Job,
    text: str,
    fields: Mapping[str, str],
    reviewer: str,
    language: str | None,
) -> None:
    atomic_write_json(
        job_dir(config, job) / APPROVED_NAME,
        {
            "schema": 1,
            "job_id": job.id,
            "client": job.client,
            "language": language,
            "text": text,
            "fields": dict(fields),
            "reviewer": reviewer,
            "approved_at": _now(),
        },
    )


def send_back(
    config: Config, job_id: str, question: str, *, reviewer: str, lock: str | None = None
) -> Job:
    """Send a job back to its author with a question: state review -> query.

    The question goes to ``query.json`` in the job's folder (it may name a patient);
    the job store only learns the state change. The draft stays as it is.
    """
    if not question.strip():
        raise ConfigError("the question for the author is empty")
    timeout_s = load_settings(config.paths.home).lock_timeout_s
    holder = lock or reviewer
    with open_store(config, actor=reviewer) as store:
        job = store.get(job_id)
        _check_reviewable(store, job, holder, timeout_s)
        atomic_write_json(
            job_dir(config, job) / QUERY_NAME,
            {
                "job_id": job.id,
                "question": question.strip(),
                "reviewer": reviewer,
                "asked_at": _now(),
            },
        )
        job = store.transition(
            job.id, JobState.QUERY, expect=JobState.REVIEW, reason="waiting for the author"
        )
        store.unlock_review(job.id, holder)
        job = store.get(job.id)
    return job


def back_to_review(
    config: Config, job_id: str, *, answer: str | None = None, actor: str = "system"
) -> Job:
    """The author answered: the job returns to the review queue, answer kept beside
    the question in ``query.json``."""
    import json

    with open_store(config, actor=actor) as store:
        job = store.get(job_id)
        path = job_dir(config, job) / QUERY_NAME
        if answer is not None and path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
            atomic_write_json(path, {**record, "answer": answer, "answered_at": _now()})
        return store.transition(job.id, JobState.REVIEW, expect=JobState.QUERY)
