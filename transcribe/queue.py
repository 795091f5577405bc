"""Platform mode's work queue: which stage a job needs next, deferred as a Procrastinate
task in the transaction of the change that calls for it.

Every process that changes jobs (``watch``, ``approve``, the review loop, ``retry``,
the workers themselves) opens the job store through
:func:`~transcribe.store.open_store`, which registers :func:`defer_next_stage` as a
change hook when platform mode is on. The hook runs inside the store's transaction,
on its psycopg connection, and inserts the task row there with Procrastinate's own
deferral (``JobManager.defer_job(..., connection=...)``, which runs its SQL function
``procrastinate_defer_jobs_v1`` on the connection it is given): the job's change and
its task commit together or not at all. No outbox, no second connection, no window
in which a committed job has no task or a task points at a job that never committed.

A task carries the job id and the job's attempt count when it was deferred; the
worker that runs it counts one more attempt when it starts and commits its result
only with that count (:meth:`~transcribe.store.JobStore.begin_attempt`,
``expect_attempts``). The runners in :mod:`transcribe.runners.worker` take it from
there.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from .config import LETTERS_QUEUE, TRANSCRIBE_QUEUES, Config
from .errors import StoreError
from .store import Job, JobState, JobStore, Transaction

log = logging.getLogger(__name__)

TRANSCRIBE_TASK = "transcribe.transcribe"
LETTER_TASK = "transcribe.letter"
STALLED_TASK = "transcribe.retry_stalled"
#: Where the periodic look for stalled tasks runs: every worker listens to it, whatever
#: its ``--queue``s, so a pool of GPU-only workers still recovers its dead.
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (*TRANSCRIBE_QUEUES, LETTERS_QUEUE)
#: Procrastinate runs higher priorities first; urgent dictations jump the queue.
PRIORITIES = {"urgent": 10, "normal": 0}


@cache
def _job_manager() -> Any:
    """A JobManager whose connector is never opened: every deferral here passes the
    store's connection, so no pool (and no second connection) is ever made."""
    from procrastinate.manager import JobManager
    from procrastinate.sync_psycopg_connector import SyncPsycopgConnector

    return JobManager(SyncPsycopgConnector())


def install(store: JobStore, config: Config) -> None:
    """Register the deferral hook on a store, in platform mode only (a PostgreSQL store:
    the queue lives in its database)."""
    if config.platform and store.backend == "postgresql":
        store.on_change(lambda tx, job: defer_next_stage(tx, job, config))


def next_stage(job: Job, config: Config) -> tuple[str, str] | None:
    """The task and queue a job now waits for, if any: transcription once its intake is
    over (``received``), the letter once ``approved``. Other states wait for a person
    (review), are being worked on, or are done."""
    if job.state == JobState.RECEIVED and job.inbox_path is None:
        return TRANSCRIBE_TASK, config.queue.transcribe
    if job.state == JobState.APPROVED:
        return LETTER_TASK, LETTERS_QUEUE
    return None


def defer_next_stage(tx: Transaction, job: Job, config: Config) -> None:
    """The change hook: defer the job's next stage on the transaction's connection."""
    planned = next_stage(job, config)
    if planned is None:
        return
    task, queue = planned
    defer_in(tx, task, queue, job)


def defer_in(tx: Transaction, task: str, queue: str, job: Job) -> int:
    """Insert one task row in the open transaction; returns its Procrastinate id.

    No ``lock`` and no ``queueing_lock``: one job's tasks never need serialising (the
    attempt count fences them), and a queueing lock would make retrying a stalled
    task fail while another task with that lock waits (Procrastinate #1446).
    """
    import psycopg
    from procrastinate import exceptions, jobs

    deferred = jobs.Job(
        id=None,
        queue=queue,
        task_name=task,
        priority=PRIORITIES.get(job.priority, 0),
        lock=None,
        queueing_lock=None,
        task_kwargs={"job_id": job.id, "attempt": job.attempts},
    )
    try:
        done = _job_manager().defer_job(deferred, connection=tx.connection)
    except exceptions.ConnectorException as exc:
        if isinstance(exc.__cause__, psycopg.Error):
            raise exc.__cause__ from None  # the store's own handling (retry, one line)
        raise StoreError(f"job {job.id} could not be queued: {exc}") from None
    log.info("job %s: %s queued on %s (attempt %d)", job.id, task, queue, job.attempts)
    return int(done.id)
