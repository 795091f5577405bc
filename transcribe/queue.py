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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
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


def default_queues(on_gpu: bool) -> tuple[str, ...]:
    """The queues of a ``transcribe worker`` started without ``--queue``, by what the
    machine decodes on. A GPU machine takes ``transcribe-gpu`` and helps with
    ``transcribe`` too (the default ``[queue] transcribe``: a lone GPU worker must not
    leave it waiting). A CPU machine leaves ``transcribe-gpu`` to the GPUs: dictations
    were sent there to be decoded fast. Both write letters, as one worker did before."""
    cpu, gpu = TRANSCRIBE_QUEUES
    return (gpu, cpu, LETTERS_QUEUE) if on_gpu else (cpu, LETTERS_QUEUE)


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


# -- the queue's state, for ``transcribe status`` -----------------------------------------

#: A worker is listed by ``status`` when its last heartbeat is this recent.
SEEN_WITHIN_S = 60.0
#: Every queue a worker serves, in the order ``status`` shows them.
ALL_QUEUES = (*QUEUES, MAINTENANCE_QUEUE)
#: The filters of Procrastinate's listing queries, none set (each takes some of them).
NO_FILTER = dict.fromkeys(
    ("id", "queue_name", "task_name", "status", "lock", "queueing_lock", "worker_id")
)


@dataclass(frozen=True)
class Task:
    """One Procrastinate task as ``status`` shows it: our job id, never a name from the
    job (a client, a source file, a field value) that could identify a patient."""

    id: int
    task: str
    queue: str
    job_id: str | None  # None for upkeep (the stalled-task check)
    worker_id: int | None  # None once its worker was pruned

    @classmethod
    def of(cls, row: dict[str, Any]) -> Task:
        kwargs = row["args"] or {}
        job_id = kwargs.get("job_id")
        return cls(
            id=int(row["id"]),
            task=str(row["task_name"]),
            queue=str(row["queue_name"]),
            job_id=str(job_id) if job_id is not None else None,
            worker_id=row["worker_id"],
        )


@dataclass(frozen=True)
class QueueDepth:
    name: str
    todo: int = 0
    doing: int = 0


@dataclass(frozen=True)
class WorkerSeen:
    """A Procrastinate worker (each ``transcribe worker`` process runs two: stages and
    upkeep) and the tasks it runs now. Procrastinate keeps only an id and a heartbeat."""

    id: int
    last_heartbeat: datetime
    silent_s: float  # by the server's clock, so machines' clocks need not agree
    running: tuple[Task, ...] = ()


@dataclass(frozen=True)
class QueueStatus:
    queues: tuple[QueueDepth, ...]
    workers: tuple[WorkerSeen, ...]  # heard from within SEEN_WITHIN_S
    stalled: tuple[Task, ...]
    stalled_after_s: float
    seen_within_s: float = SEEN_WITHIN_S

    def as_dict(self) -> dict[str, Any]:
        """What ``status --queues --json`` prints, the same in the library: lists, and
        heartbeats in ISO 8601."""
        data = asdict(self)
        for key in ("queues", "workers", "stalled"):
            data[key] = list(data[key])
        for worker in data["workers"]:
            worker["last_heartbeat"] = worker["last_heartbeat"].isoformat()
            worker["running"] = list(worker["running"])
        return data


def queue_status(tx: Transaction, config: Config) -> QueueStatus:
    """The work queue now: tasks waiting and running per queue, the workers heard from
    in the last minute with their running tasks, and the stalled tasks (running on a
    worker silent for ``stalled_after_s``, or gone), which the next stalled-task check
    puts back in the queue.

    Procrastinate's own queries (those of ``JobManager.list_queues``, ``list_jobs`` and
    ``get_stalled_jobs``) run on the store's connection, in one read-only snapshot, so
    a task counted as running is also under its worker; only the workers' table, for
    which Procrastinate has no listing, is read directly.
    """
    tx.connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    doing = _procrastinate(tx, "list_jobs", **(NO_FILTER | {"status": "doing"}))
    running = [Task.of(row) for row in doing]
    stalled = _procrastinate(
        tx,
        "select_stalled_jobs_by_heartbeat",
        queue=None,
        task_name=None,
        seconds_since_heartbeat=config.queue.stalled_after_s,
    )
    return QueueStatus(
        queues=_depths(tx),
        workers=_workers(tx, running),
        stalled=tuple(Task.of(row) for row in stalled),
        stalled_after_s=config.queue.stalled_after_s,
    )


def waiting_jobs(tx: Transaction, queues: Sequence[str], task: str = TRANSCRIBE_TASK) -> list[str]:
    """The job ids of ``task``'s tasks waiting (``todo``) on ``queues``, oldest first:
    what a draining ``batch`` has before it, and what it left behind."""
    found: list[dict[str, Any]] = []
    for queue in dict.fromkeys(queues):
        wanted = {"queue_name": queue, "task_name": task, "status": "todo"}
        found += _procrastinate(tx, "list_jobs", **(NO_FILTER | wanted))
    return [str(row["args"]["job_id"]) for row in sorted(found, key=lambda row: row["id"])]


def _depths(tx: Transaction) -> tuple[QueueDepth, ...]:
    """Per queue, ours first (empty ones too), then any other found in the table. One
    status at a time: the table keeps every finished task, and a filter on the status
    lets PostgreSQL count from Procrastinate's partial indexes on waiting and running
    tasks instead of reading them all (0.3 ms against 400 ms for 50,000 finished)."""
    counts: dict[str, dict[str, int]] = {name: {} for name in ALL_QUEUES}
    for status in ("todo", "doing"):
        found = _procrastinate(tx, "list_queues", **(NO_FILTER | {"status": status}))
        for row in found:
            counts.setdefault(row["name"], {})[status] = int(row["jobs_count"])
    return tuple(QueueDepth(name, **found) for name, found in counts.items())


def _workers(tx: Transaction, running: list[Task]) -> tuple[WorkerSeen, ...]:
    rows = tx.execute(
        "SELECT id, last_heartbeat, EXTRACT(EPOCH FROM NOW() - last_heartbeat)"
        " FROM procrastinate_workers WHERE last_heartbeat >= NOW() - make_interval(secs => ?)"
        " ORDER BY id",
        (SEEN_WITHIN_S,),
    ).fetchall()
    return tuple(
        WorkerSeen(
            id=int(worker),
            last_heartbeat=heartbeat,
            silent_s=max(0.0, float(silent)),
            running=tuple(task for task in running if task.worker_id == worker),
        )
        for worker, heartbeat, silent in rows
    )


def _procrastinate(tx: Transaction, query: str, **arguments: Any) -> list[dict[str, Any]]:
    """One of Procrastinate's named queries, through its connector, on the store's
    connection (no pool of its own is ever opened). A database error comes back as
    psycopg raised it, for the store to handle as any other."""
    import psycopg
    from procrastinate import exceptions, sql

    try:
        return _job_manager().connector.execute_query_all_with_connection(
            tx.connection, sql.queries[query], **arguments
        )
    except exceptions.ConnectorException as exc:
        if isinstance(exc.__cause__, psycopg.Error):
            raise exc.__cause__ from None
        raise StoreError(f"the work queue could not be read: {exc}") from None
