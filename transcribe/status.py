"""Read-only views of the job store and of a job's files, for ``status`` and ``show``."""

from __future__ import annotations

import json
from typing import Any

from .config import Config
from .errors import StateError
from .pipeline import transcript_path
from .store import JobStore

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
)


def list_jobs(config: Config, *, client: str | None = None) -> list[dict[str, Any]]:
    with JobStore(config.paths.database) as store:
        jobs = store.jobs(client=client)
    return [{key: job.as_dict()[key] for key in STATUS_FIELDS} for job in jobs]


def load_transcript(config: Config, job_id: str) -> dict[str, Any]:
    """The job's transcript as saved by the transcription stage."""
    with JobStore(config.paths.database) as store:
        job = store.get(job_id)
    path = transcript_path(config, job)
    if not path.is_file():
        raise StateError(f"job {job_id} has no transcript yet (state: {job.state})")
    return json.loads(path.read_text(encoding="utf-8"))
