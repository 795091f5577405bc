"""Read-only views of the job store, of a job's files and of the work queue, for
``status`` and ``show``."""

from __future__ import annotations

from typing import Any

from .config import Config
from .draft import load_draft, passage_span
from .errors import ConfigError, StateError
from .queue import queue_status
from .stages.transcription import draft_path, transcript_path
from .store import Job, open_store
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


def status_row(job: Job) -> dict[str, Any]:
    """One job as ``status --json`` lists it, locally or from the service."""
    data = job.as_dict()
    return {key: data[key] for key in STATUS_FIELDS}


def list_jobs(config: Config, *, client: str | None = None) -> list[dict[str, Any]]:
    with open_store(config) as store:
        jobs = store.jobs(client=client)
    return [status_row(job) for job in jobs]


def platform_status(config: Config) -> dict[str, Any]:
    """The work queue of platform mode (see :func:`~transcribe.queue.queue_status`):
    job ids and task names only, so it can be pasted into a ticket or a chat."""
    if not config.platform:
        raise ConfigError(
            "the work queue exists only in platform mode: here watch and batch do the"
            " work, and `transcribe status` lists it all",
            hint="platform mode is [store] url = a PostgreSQL server and [queue] enabled = true",
        )
    with open_store(config) as store:
        return store.atomic(lambda tx: queue_status(tx, config)).as_dict()


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
