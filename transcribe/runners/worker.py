"""The worker: run stages from the shared work queue (platform mode), on any machine
that has the workspace's config and the model.

A Procrastinate worker on the PostgreSQL job store's database takes tasks from its
queues (``transcribe``, ``transcribe-gpu``, ``letters``); each task names a job and the
job's attempt count when it was deferred (:mod:`transcribe.queue`), and calls the same
stage functions as ``watch`` and ``batch``: :func:`~transcribe.stages.transcription.
transcribe_claimed` and :func:`~transcribe.stages.letter.finish_approved`. A run first
counts an attempt (:meth:`~transcribe.store.JobStore.begin_attempt`) and commits
only with that count, so a run whose worker was taken for dead and came back writes
nothing (:class:`~transcribe.errors.StaleAttempt`).

What we rely on from Procrastinate (3.10), and why, read against its tracker:

- **Deferral on our connection**: ``JobManager.defer_job(job, connection=...)`` runs its
  SQL function ``procrastinate_defer_jobs_v1`` on the connection it is given, so a
  task commits with the job store's transaction (:mod:`transcribe.queue`).
- **At least once, not more**: a fetched task is ``doing`` until its worker reports.
  A worker killed (SIGKILL, power cut) leaves it ``doing`` for ever: Procrastinate
  does not retry it by itself (#307, #740). So every run is fenced, and stages are
  idempotent.
- **Heartbeats**: each worker refreshes its row in ``procrastinate_workers`` every
  ``update_heartbeat_interval`` (our ``heartbeat_s``), from its event loop, while
  tasks run in threads (sync tasks go through asgiref's ``sync_to_async``, not
  thread-sensitive; CTranslate2 lets go of the GIL while it decodes).
  ``JobManager.get_stalled_jobs(seconds_since_heartbeat=...)`` returns the ``doing``
  tasks of workers silent that long, or gone: a worker pruned at another's start
  (``stalled_worker_timeout``) has its tasks' ``worker_id`` set to NULL by the foreign
  key, and the query counts NULL as stalled. ``retry_job`` puts such a task back to
  ``todo`` with the same arguments and its own ``attempts`` + 1, which is how a run
  knows it is a re-run and may take the job over from the dead one.
- **We schedule that look ourselves**: a periodic task (``App.periodic``, a cron with a
  seconds column) on the ``maintenance`` queue, which every worker process serves
  with a second Procrastinate worker of its own (one slot, so a long transcription
  never holds the look up). Procrastinate defers each tick once across all workers
  (a unique row per task and timestamp in ``procrastinate_periodic_defers``). No
  ``lock`` on it: a locked periodic task whose worker died stays ``doing`` holding
  the lock, and no later run ever starts (#1408); unlocked, a stalled run is simply
  retried by the next one. ``retry_job`` sends no NOTIFY: the retried task is found
  by polling, every few seconds.
- **No queueing lock anywhere**: retrying a stalled task fails on the queueing-lock
  unique index when another task with that lock waits (#1446), which would leave it
  ``doing``.
- **Priorities**: a worker fetches the highest priority first, then the oldest, so
  urgent dictations jump the queue (:data:`transcribe.queue.PRIORITIES`).
- **Graceful stop**: SIGINT or SIGTERM stops fetching, waits for running tasks and
  unregisters the worker; a second signal ends it at once. ``Worker.stop()`` does the
  same from our code, which is how a limit ends a run (``--max-jobs``, ``--until``).
  LISTEN/NOTIFY wakes workers when a task commits, polling every few seconds being
  the fallback; it does not survive PgBouncer's transaction pooling, so workers
  connect to PostgreSQL directly (or through session pooling).
- **Draining**: ``Worker(wait=False)`` fetches until a fetch finds nothing, then stops
  as above. With one slot the next fetch waits for the running task to end, so it
  stops once no ``todo`` task is left on its queues (``transcribe batch``). A worker
  middleware (``worker_middleware``: async, on the loop) sees each task as it starts,
  before the next fetch: it counts them, and stops the worker at a limit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..asr.engine import WhisperEngine, choose_device
from ..config import TRANSCRIBE_QUEUES, Config
from ..errors import ConfigError, ModelError, StaleAttempt, StoreError
from ..progress import NullReporter, Reporter
from ..queue import (
    LETTER_TASK,
    MAINTENANCE_QUEUE,
    QUEUES,
    STALLED_TASK,
    TRANSCRIBE_TASK,
    default_queues,
)
from ..stages.letter import finish_approved
from ..stages.transcription import transcribe_claimed
from ..store import JobState, open_store, worker_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """``queues`` empty: the machine's default (:func:`~transcribe.queue.default_queues`).

    ``drain``: stop once no task waits on the queues, instead of waiting for more (the
    overnight ``batch`` of platform mode). ``max_tasks`` and ``until`` stop taking
    tasks after that many (exactly, with one slot), or from that time; tasks already
    running finish either way.
    """

    queues: tuple[str, ...] = ()
    concurrency: int = 1
    drain: bool = False
    max_tasks: int | None = None
    until: datetime | None = None  # timezone-aware


@dataclass
class Served:
    """How a run of the workers ended, for ``batch``'s report: the first reason given
    (``max-jobs``, ``deadline``, ``interrupted`` by a signal, ``model failure``), or
    ``done`` when the stages ended by themselves (caught up, when draining); and how
    many tasks the stages took."""

    why: str | None = None
    tasks: int = 0

    @property
    def stopped_by(self) -> str:
        return self.why or "done"

    def ended(self, reason: str) -> None:
        if self.why is None:
            self.why = reason


def require_platform(config: Config) -> None:
    """A worker only makes sense on the shared queue; say why, in one line, when not."""
    if config.store.backend != "postgresql":
        raise ConfigError(
            "transcribe worker needs platform mode, and this workspace keeps its jobs in"
            " the embedded SQLite store (jobs.db), which only this machine's watch and"
            " batch work from",
            hint="set [store] url to a PostgreSQL server and [queue] enabled = true,"
            " then run `transcribe db migrate`",
        )
    if not config.platform:
        raise ConfigError(
            "transcribe worker needs platform mode: [queue] enabled is false, so watch"
            " and batch do the work here and nothing is queued",
            hint="set [queue] enabled = true in transcribe.toml on every machine",
        )


def check_queues(queues: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [queue for queue in queues if queue not in QUEUES]
    if unknown:
        raise ConfigError(f"no queue {unknown[0]!r}: expected one of {', '.join(QUEUES)}")
    return tuple(dict.fromkeys(queues))


def choose_queues(config: Config, asked: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """The queues asked for, or this machine's default, and a few words on why, for
    the start-up line: an operator should see that a GPU was (or was not) found."""
    if asked:
        return check_queues(asked), ""
    on_gpu = choose_device(config.transcription).device == "cuda"
    why = "the default with a CUDA GPU" if on_gpu else "the default without a CUDA GPU"
    return default_queues(on_gpu), why


class Runtime:
    """What the tasks of one worker process share: the config, one Whisper engine
    (loaded once; used by one task at a time, since concurrent transcriptions in
    threads leak memory upstream, faster-whisper #1055), and a way to stop."""

    def __init__(
        self, config: Config, engine_factory: Callable[[], WhisperEngine], reporter: Reporter
    ) -> None:
        self.config = config
        self.engine_factory = engine_factory
        self.reporter = reporter
        self.actor = f"worker {worker_id()}"
        self.stop: Callable[[], None] = lambda: None
        self._engine: WhisperEngine | None = None
        self._engine_lock = threading.Lock()

    def load_engine(self) -> WhisperEngine:
        """At start-up, so a missing or broken model stops the worker in one line
        instead of failing task after task."""
        with self._engine_lock:
            if self._engine is None:
                self._engine = self.engine_factory()
            self._engine.load()
            return self._engine

    @contextmanager
    def engine(self) -> Iterator[WhisperEngine]:
        with self._engine_lock:
            if self._engine is None:
                self._engine = self.engine_factory()
            yield self._engine


def rerun(context: Any) -> bool:
    """Procrastinate counts a task's retries: a re-run follows a worker taken for dead."""
    return bool(context.job.attempts)


def run_transcription(runtime: Runtime, context: Any, job_id: str, attempt: int) -> None:
    """The ``transcribe`` task: claim the job for this attempt, then the stage."""
    config = runtime.config
    with runtime.engine() as engine, open_store(config, actor=runtime.actor) as store:
        job = store.begin_attempt(
            job_id,
            attempt,
            states=(JobState.RECEIVED, JobState.TRANSCRIBING),
            take_over=rerun(context),
            to_state=JobState.TRANSCRIBING,
        )
        if job is None:
            log.info("job %s: task of attempt %d has nothing left to do", job_id, attempt)
            return
        try:
            transcribe_claimed(config, store, engine, [job], runtime.reporter)
        except ModelError:
            log.error("job %s: the model failed; this worker stops", job_id)
            runtime.stop()  # the job went back to the queue, for a worker that can
            raise


def run_letter(runtime: Runtime, context: Any, job_id: str, attempt: int) -> None:
    """The ``letters`` task: count this attempt, then render, sign and archive."""
    config = runtime.config
    with open_store(config, actor=runtime.actor) as store:
        job = store.begin_attempt(
            job_id, attempt, states=(JobState.APPROVED, JobState.RENDERED), take_over=rerun(context)
        )
        if job is None:
            log.info("job %s: task of attempt %d has nothing left to do", job_id, attempt)
            return
        runtime.reporter.job(job, "rendering")
        try:
            done = finish_approved(config, store, job_id, attempt=job.attempts)
        except StaleAttempt as exc:
            log.warning("%s", exc)
            return
        runtime.reporter.job(done, str(done.state))


async def retry_stalled(context: Any, stalled_after_s: float) -> int:
    """The periodic task: tasks of workers silent for ``stalled_after_s`` go back to
    the queue (Procrastinate's ``get_stalled_jobs`` + ``retry_job``). One that finished
    or was retried meanwhile is skipped; the next tick looks again."""
    from procrastinate import exceptions

    manager = context.app.job_manager
    retried = 0
    for task in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s):
        try:
            await manager.retry_job(task)
        except exceptions.ConnectorException as exc:
            log.info("stalled task %s not retried: %s", task.id, exc)
            continue
        retried += 1
        log.warning(
            "task %s (%s, job %s) retried: its worker was silent for %.0f s",
            task.id,
            task.task_name,
            task.task_kwargs.get("job_id", "-"),
            stalled_after_s,
        )
    return retried


def every(seconds: float) -> str:
    """A cron line (with Procrastinate's seconds column) firing about every ``seconds``."""
    if seconds < 60:
        return f"*/{max(1, round(seconds))} * * * * *"
    return f"*/{max(1, round(seconds / 60))} * * * *"


def build_app(runtime: Runtime, concurrency: int = 1) -> Any:
    """The Procrastinate app of this process: its tasks call the runners above. Its
    pool serves both workers' fetches, heartbeats and reports (a task's own store
    has its connection); listening takes one more, outside the pool."""
    from procrastinate import App, PsycopgConnector

    queue = runtime.config.queue
    connector = PsycopgConnector(
        conninfo=runtime.config.store.url,
        min_size=1,
        max_size=concurrency + 3,
        kwargs={"application_name": "transcribe worker", "connect_timeout": 10},
    )
    app = App(connector=connector)

    @app.task(name=TRANSCRIBE_TASK, pass_context=True)
    def transcribe(context: Any, job_id: str, attempt: int) -> None:
        run_transcription(runtime, context, job_id, attempt)

    @app.task(name=LETTER_TASK, pass_context=True)
    def letter(context: Any, job_id: str, attempt: int) -> None:
        run_letter(runtime, context, job_id, attempt)

    @app.periodic(cron=every(queue.check_stalled_s))
    @app.task(name=STALLED_TASK, queue=MAINTENANCE_QUEUE, pass_context=True)
    async def stalled(context: Any, timestamp: int) -> None:
        await retry_stalled(context, queue.stalled_after_s)

    return app


def run_worker(
    config: Config,
    options: WorkerOptions,
    engine_factory: Callable[[], WhisperEngine],
    reporter: Reporter | None = None,
) -> Served:
    """Run tasks from ``options.queues`` (and the maintenance queue) until stopped, or
    with ``options.drain`` until they are empty."""
    require_platform(config)
    queues, why = choose_queues(config, options.queues)
    with open_store(config, actor="worker"):
        pass  # reachable and migrated, or one line that says what to do
    runtime = Runtime(config, engine_factory, reporter or NullReporter())
    decoding = ""
    if any(queue in TRANSCRIBE_QUEUES for queue in queues):
        device = runtime.load_engine().device
        decoding = f", decoding on {device.device} {device.compute_type}"
    ending = "until its queues are empty; " if options.drain else ""
    runtime.reporter.note(
        f"worker {worker_id()} on {', '.join(queues)}{f' ({why})' if why else ''}{decoding}"
        f" ({ending}Ctrl-C stops after the running tasks)"
    )
    return asyncio.run(_serve(build_app(runtime, options.concurrency), runtime, queues, options))


async def _serve(
    app: Any, runtime: Runtime, queues: tuple[str, ...], options: WorkerOptions
) -> Served:
    """Two Procrastinate workers in one loop: the stages, with the asked concurrency,
    and the upkeep (the stalled-task check) with a slot of its own, which a long
    transcription never holds up. SIGINT or SIGTERM stops both gracefully.

    Draining, only the stages stop when caught up (``wait=False``); the upkeep keeps
    waiting for its next tick until they do, then ends with them."""
    from procrastinate import exceptions
    from procrastinate.worker import Worker

    timing = runtime.config.queue
    served = Served()
    common = {
        "install_signal_handlers": False,
        "update_heartbeat_interval": timing.heartbeat_s,
        "stalled_worker_timeout": timing.stalled_after_s,
        # a task put back by retry_job is not announced (no NOTIFY): polling finds it
        "fetch_job_polling_interval": min(5.0, timing.check_stalled_s),
    }
    try:
        async with app.open_async():
            stages = Worker(
                app,
                queues=list(queues),
                name=worker_id(),
                concurrency=options.concurrency,
                wait=not options.drain,
                worker_middleware=[task_limit(served, options.max_tasks)],
                **common,
            )
            upkeep = Worker(
                app,
                queues=[MAINTENANCE_QUEUE],
                name=f"{worker_id()} upkeep",
                delete_jobs="successful",  # one row per tick otherwise, for ever
                **common,
            )
            await _run_together(stages, upkeep, runtime, served, options.until)
    except exceptions.ConnectorException as exc:
        cause = exc.__cause__ or exc
        raise StoreError(
            f"worker lost the job store: {' '.join(str(cause).split())[:300]}",
            hint="tasks it was running go back to the queue once it is seen silent",
        ) from None
    return served


def task_limit(served: Served, max_tasks: int | None) -> Callable[..., Any]:
    """A worker middleware: count each task as it starts and, at the ``max_tasks``-th,
    stop the worker fetching. It runs before the next fetch (with one slot the next
    fetch waits for this task to end), so no task beyond the limit is ever taken."""

    async def count(call_next: Callable[[], Any], context: Any, worker: Any) -> Any:
        served.tasks += 1
        if max_tasks is not None and served.tasks >= max_tasks:
            served.ended("max-jobs")
            worker.stop()  # this task runs to its end, then the worker stops
        return await call_next()

    return count


async def _stop_at(until: datetime, stages: Any, served: Served) -> None:
    """``until``: no task taken from then on; the running ones finish."""
    await asyncio.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()))
    served.ended("deadline")
    stages.stop()


async def _run_together(
    stages: Any, upkeep: Any, runtime: Runtime, served: Served, until: datetime | None
) -> None:
    """Run both workers; the first signal, a model failure or either one ending stops
    both; a second signal ends the process at once (the handlers are removed). A
    deadline only stops the stages taking tasks: the upkeep ends when they do."""
    loop = asyncio.get_running_loop()

    def stop(reason: str = "done") -> None:
        served.ended(reason)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stages.stop()
        upkeep.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, "interrupted")
    runtime.stop = lambda: loop.call_soon_threadsafe(stop, "model failure")
    runs = [asyncio.create_task(worker.run()) for worker in (stages, upkeep)]
    deadline = asyncio.create_task(_stop_at(until, stages, served)) if until else None
    try:
        await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if deadline is not None:
            deadline.cancel()
        stop()
        outcomes = await asyncio.gather(*runs, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
