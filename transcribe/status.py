"""Read-only views of the job store and of a job's files, for ``status`` and ``show``."""

from __future__ import annotations

from typing import Any

from .config import Config
from .draft import load_draft, passage_span
from .errors import StateError
from .stages.transcription import draft_path, transcript_path
from .store import open_store
from .store.audit import operator_id

STATUS_FIELDS = (
    "id",
    "client",
    "state",
    "source",
    "reason",
    "priority",
    "language",
    "duration_s",
    "duplicate_of",
    "attempts",
    "created_at",
    "updated_at",
    "warnings",
)


def list_jobs(config: Config, *, client: str | None = None) -> list[dict[str, Any]]:
    with open_store(config) as store:
        jobs = store.jobs(client=client)
    return [{key: job.as_dict()[key] for key in STATUS_FIELDS} for job in jobs]


def load_job_draft(config: Config, job_id: str) -> dict[str, Any]:
    """What ``show`` prints: the job, its current draft text, fields and timed words.

    Reading a draft is reading health or legal data: the view is audited.
    """
    with open_store(config, actor=operator_id()) as store:
        job = store.get(job_id)
        path = draft_path(config, job)
        if not path.is_file():
            raise StateError(f"job {job_id} has no draft yet (state: {job.state})")
        draft = load_draft(path)
        store.record("view", job_id, "draft shown")
    return {
        "id": job.id,
        "client": job.client,
        "state": str(job.state),
        "language": draft["language"],
        "warnings": [dict(w) for w in job.warnings],
        "text": draft["text"],
        "fields": draft["fields"],
        "unreliable": [
            {**passage, "span": passage_span(draft, passage)}
            for passage in draft.get("unreliable", ())
        ],
        "words": draft["words"],
        "transcript": str(transcript_path(config, job)),
    }
