"""The job store: the single source of truth for job states, and their audit trail.

Callers import the store from here and not from a backend module, so that the rules
every backend keeps (which state may follow which, one claim per job, each state
change and its audit event committed together) have one name, and a backend can be
added beside :mod:`transcribe.store.sqlite` without touching them.
"""

from __future__ import annotations

from .sqlite import ALLOWED, Job, JobState, JobStore, claim_is_stale, new_job_id, worker_id

__all__ = [
    "ALLOWED",
    "Job",
    "JobState",
    "JobStore",
    "claim_is_stale",
    "new_job_id",
    "worker_id",
]
