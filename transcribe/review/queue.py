"""The review queue: jobs waiting for a secretary, urgent first, then oldest."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import Config
from ..draft import load_draft
from ..stages.transcription import draft_path
from ..store import Job, JobState, open_store
from ..store.model import reviewer_name
from .session import count_doubtful
from .settings import ReviewSettings


@dataclass(frozen=True)
class QueueEntry:
    job: Job
    doubtful: int
    age_s: float
    locked_by: str | None  # who holds a live review lock on it, if anyone

    @property
    def urgent(self) -> bool:
        return self.job.priority == "urgent"


def review_queue(config: Config, settings: ReviewSettings) -> list[QueueEntry]:
    """Every job in ``review``, with what the list shows (no patient names)."""
    with open_store(config) as store:
        jobs = store.jobs(JobState.REVIEW)
    return queue_entries(config, jobs, settings)


def queue_entries(
    config: Config, jobs: Iterable[Job], settings: ReviewSettings
) -> list[QueueEntry]:
    """The queue's rows for ``jobs`` (read from their drafts); a live lock is shown by
    who holds it, never by a lease's token."""
    now = time.time()
    entries = []
    for job in jobs:
        path = draft_path(config, job)
        doubtful = count_doubtful(load_draft(path), settings.threshold) if path.is_file() else 0
        fresh = (
            job.review_lock is not None
            and job.review_lock_at is not None
            and now - job.review_lock_at < settings.lock_timeout_s
        )
        holder = reviewer_name(job.review_lock) if fresh and job.review_lock else None
        entries.append(QueueEntry(job, doubtful, now - job.created_at, holder))
    return entries


def format_duration(seconds: float | None) -> str:
    """Audio length as m:ss."""
    if not seconds:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def format_age(seconds: float) -> str:
    """Age of a job: 5m, 3h, 2d."""
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"
