"""The overnight batch: take in the inbox, then transcribe everything pending, fast.

Jobs run urgent first, then oldest, in groups whose speech windows are decoded in
shared batches (:func:`transcribe.stages.transcription.plan_groups`), within one
priority class so an urgent dictation never waits behind a normal one. Each job is claimed in
the store before work starts and committed on its own when done, so a batch that is
interrupted (Ctrl-C, kill, power cut) and started again transcribes nothing twice
and loses nothing. A JSON report (no personal data) is written to ``reports/``.

In platform mode the jobs belong to the work queue, so the batch never claims one
itself (it would race the queue's tasks outside their fencing): it takes the inbox in
(each intake commit queues a task), then runs this machine's transcription queues as
a ``transcribe worker`` would, through the same task functions, fencing and
stalled-task check, until no task waits on them (:func:`_drain`). One task is one
job, decoded alone: the queue, not the batch, decides the order (priority, then age).

Letters are left to the letters workers. They need LibreOffice, the signing key and
the archive, which a transcription machine may lack (a letter failing here would fail
the job for a person to retry); they come from the day's approvals, not the inbox; and
the letters workers run all day, so draining ``letters`` here would only race them.
The embedded batch still finishes letters, as it always did: nothing else would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..asr.engine import WhisperEngine
from ..asr.pipeline import pass_settings
from ..config import TRANSCRIBE_QUEUES, Config
from ..errors import ModelError
from ..fsutil import atomic_write_json
from ..progress import NullReporter, Reporter
from ..queue import default_queues, waiting_jobs
from ..stages.transcription import plan_groups, release_claim, transcribe_group
from ..store import Job, JobState, JobStore, open_store
from .watcher import Intake, drain_intake, finish_letters, recover, sigterm_as_interrupt

REPORTS = "reports"


@dataclass(frozen=True)
class BatchOptions:
    until: datetime | None = None  # stop taking new jobs at this time
    max_jobs: int | None = None


@dataclass
class BatchReport:
    started_at: str
    device: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    pending_left: int = 0
    stopped_by: str = "done"
    wall_s: float = 0.0
    report_path: str = ""

    @property
    def audio_s(self) -> float:
        return sum(j["duration_s"] or 0.0 for j in self.jobs if j["state"] == "review")

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [j for j in self.jobs if j["state"] != "review"]

    @property
    def speed(self) -> float:
        """Audio time transcribed per wall-clock time (x real time)."""
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            audio_s=round(self.audio_s, 1),
            speed_x_realtime=round(self.speed, 2),
            failures=len(self.failures),
        )
        return data


class BatchReporter(Reporter, Protocol):
    """Progress of a batch; the CLI draws it (Rich on a terminal, log lines elsewhere)."""

    def started(self, jobs: int, audio_s: float) -> None: ...
    def group_started(self, jobs: list[Job]) -> None: ...
    def job_done(self, job: Job) -> None: ...


class NullBatchReporter(NullReporter):
    def started(self, jobs: int, audio_s: float) -> None:
        pass

    def group_started(self, jobs: list[Job]) -> None:
        pass

    def job_done(self, job: Job) -> None:
        pass


def run_batch(
    config: Config,
    engine_factory: Callable[[], WhisperEngine],
    options: BatchOptions,
    reporter: BatchReporter | None = None,
) -> BatchReport:
    """Intake, then transcribe pending jobs in queue order until done or told to stop."""
    reporter = reporter or NullBatchReporter()
    started = time.monotonic()
    report = BatchReport(started_at=datetime.now(UTC).isoformat())
    engine = engine_factory()
    settings = pass_settings(config, engine)
    report.device, report.settings = asdict(engine.device), asdict(settings)
    if config.platform:
        return _queue_batch(config, engine, options, reporter, report, started)
    with open_store(config, actor="batch") as store, sigterm_as_interrupt():
        _take_inbox_in(config, store, reporter)
        try:
            _transcribe_all(config, store, engine, options, reporter, report)
            finish_letters(config, store, reporter)
        except KeyboardInterrupt:
            report.stopped_by = "interrupted"
            raise
        finally:
            report.pending_left = len(store.jobs(JobState.RECEIVED))
            report.wall_s = round(time.monotonic() - started, 2)
            write_report(config, report)
    return report


def _take_inbox_in(config: Config, store: JobStore, reporter: BatchReporter) -> None:
    """What ``watch --once`` does first: recover what a crash left, take the inbox in."""
    recover(config, store, reporter)
    intake = Intake(config, store, reporter)
    intake.add_all()
    drain_intake(intake)


def _transcribe_all(
    config: Config,
    store: JobStore,
    engine: WhisperEngine,
    options: BatchOptions,
    reporter: BatchReporter,
    report: BatchReport,
) -> None:
    queue = [j for j in store.jobs(JobState.RECEIVED) if j.inbox_path is None]
    reporter.started(len(queue), sum(j.duration_s or 0.0 for j in queue))
    for group in plan_groups(queue, options.max_jobs):
        if options.until is not None and datetime.now(UTC) >= options.until:
            report.stopped_by = "deadline"
            return
        claimed = [job for job in (store.claim(j.id) for j in group) if job is not None]
        if not claimed:
            continue
        reporter.group_started(claimed)
        try:
            finished = transcribe_group(config, store, engine, claimed)
        except BaseException:
            for job in claimed:
                release_claim(store, job.id)
            raise
        for job in finished:
            report.jobs.append(_job_entry(job))
            reporter.job_done(job)
    if options.max_jobs is not None and len(queue) > options.max_jobs:
        report.stopped_by = "max-jobs"


# -- platform mode: take in, then drain this machine's transcription queues --------------


def _queue_batch(
    config: Config,
    engine: WhisperEngine,
    options: BatchOptions,
    reporter: BatchReporter,
    report: BatchReport,
    started: float,
) -> BatchReport:
    """Intake as ``watch --once`` does in platform mode, then :func:`_drain`; the
    report is written whatever happens, counting the tasks left on our queues."""
    queues = batch_queues(engine)
    with open_store(config, actor="batch") as store, sigterm_as_interrupt():
        _take_inbox_in(config, store, reporter)  # platform mode: half-done intakes only
        waiting = _waiting(store, queues)
        reporter.started(len(waiting), sum(job.duration_s or 0.0 for job in waiting))
    try:
        report.stopped_by = _drain(config, engine, queues, options, reporter, report)
        if report.stopped_by == "interrupted":
            raise KeyboardInterrupt  # as the embedded batch: exit 130, after the report
        if report.stopped_by == "model failure":
            raise ModelError(
                "the model failed during the batch: its job went back to the queue",
                hint="see the error above; `transcribe doctor` checks the model",
            )
    except KeyboardInterrupt:
        report.stopped_by = "interrupted"
        raise
    finally:
        with open_store(config, actor="batch") as store:
            report.pending_left = len(waiting_jobs_of(store, queues))
        if report.stopped_by in ("max-jobs", "deadline") and not report.pending_left:
            report.stopped_by = "done"  # as embedded: a limit counts only if work was left
        report.wall_s = round(time.monotonic() - started, 2)
        write_report(config, report)
    return report


def batch_queues(engine: WhisperEngine) -> tuple[str, ...]:
    """The transcription queues a worker on this machine takes by default (with a GPU
    ``transcribe-gpu`` too), without ``letters`` (see the module's docstring)."""
    on_gpu = engine.device.device == "cuda"
    return tuple(queue for queue in default_queues(on_gpu) if queue in TRANSCRIBE_QUEUES)


def waiting_jobs_of(store: JobStore, queues: tuple[str, ...]) -> list[str]:
    return store.atomic(lambda tx: waiting_jobs(tx, queues))


def _waiting(store: JobStore, queues: tuple[str, ...]) -> list[Job]:
    """The jobs whose tasks wait on our queues now, for the progress bar's total."""
    wanted = set(waiting_jobs_of(store, queues))
    return [job for job in store.jobs(JobState.RECEIVED) if job.id in wanted]


def _drain(
    config: Config,
    engine: WhisperEngine,
    queues: tuple[str, ...],
    options: BatchOptions,
    reporter: BatchReporter,
    report: BatchReport,
) -> str:
    """Run ``queues`` as ``transcribe worker`` does (:func:`~transcribe.runners.worker.
    run_worker`, its task functions and fencing), one task at a time, until no task
    waits, ``max_jobs`` tasks were taken, or ``until``. Returns why it stopped."""
    from .worker import WorkerOptions, run_worker  # the letter stage's imports: ~1 s

    if options.until is not None and datetime.now(UTC) >= options.until:
        return "deadline"  # nothing taken: not even the model is loaded
    drain = WorkerOptions(
        queues=queues, drain=True, max_tasks=options.max_jobs, until=options.until
    )
    served = run_worker(config, drain, lambda: engine, TaskReporter(reporter, report))
    return served.stopped_by


class TaskReporter:
    """The worker's task functions report a job twice through the plain
    :class:`~transcribe.progress.Reporter` (:func:`~transcribe.stages.transcription.
    transcribe_claimed`): as its run starts, then with its state when the run ends.
    This turns the pair into the batch's progress and its report's entries. An
    interrupted run reports only its start: its job is still pending."""

    def __init__(self, reporter: BatchReporter, report: BatchReport) -> None:
        self.reporter = reporter
        self.report = report
        self.running: set[str] = set()

    def job(self, job: Job, message: str) -> None:
        if job.id not in self.running:
            self.running.add(job.id)
            self.reporter.group_started([job])
            return
        self.running.discard(job.id)
        self.report.jobs.append(_job_entry(job))
        self.reporter.job_done(job)

    def note(self, message: str) -> None:
        self.reporter.note(message)


def _job_entry(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "client": job.client,
        "state": str(job.state),
        "duration_s": job.duration_s,
        "reason": job.reason,
    }


def write_report(config: Config, report: BatchReport) -> Path:
    stamp = report.started_at[:19].replace(":", "").replace("-", "")
    path = config.paths.home / REPORTS / f"batch-{stamp}.json"
    report.report_path = str(path)
    atomic_write_json(path, report.as_dict())
    path.parent.chmod(0o700)
    return path
