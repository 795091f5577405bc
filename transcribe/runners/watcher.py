"""The watcher: notice finished files in the inbox, take them in, transcribe them.

The watcher only detects and enqueues (paperless-ngx style): file events from
watchdog, a scan at start-up and a periodic rescan (events can be missed on network
shares or while the process was down) all feed the same :class:`StabilityTracker`.
One bad file is quarantined and the loop goes on.

Embedded (the default), the watcher also transcribes what it took in and finishes
approved letters. In platform mode it only takes files in: each intake's commit
queues the transcription (:mod:`transcribe.queue`), which ``transcribe worker``
processes run, and they also recover each other's stalled work, so the watcher
neither loads a model nor releases claims.
"""

from __future__ import annotations

import logging
import queue
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from ..asr.engine import WhisperEngine
from ..config import Config
from ..errors import TranscribeError
from ..progress import NullReporter, Reporter
from ..stages.intake import (
    StabilityTracker,
    finish_pending_intake,
    is_ignored,
    is_ready,
    is_sidecar,
    scan_inbox,
    sweep_temp_files,
    take_in,
)
from ..stages.transcription import transcribe_pending
from ..store import Job, JobState, JobStore, open_store

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25


@dataclass
class WatchSummary:
    taken: list[Job] = field(default_factory=list)
    transcribed: list[Job] = field(default_factory=list)

    def count(self, outcome_state: str) -> int:
        return sum(1 for job in self.taken + self.transcribed if job.state == outcome_state)


def finish_letters(
    config: Config, store: JobStore, reporter: Reporter, *, sweep_archived: bool = False
) -> int:
    """Approved letters are rendered and archived; signed ones left by a crash are filed.

    Cheap when there is nothing to do (one indexed query; the document and archive
    libraries are imported only when a letter waits), because the watcher calls it on
    every turn. ``sweep_archived`` also removes working files an interrupted archiving
    left behind (start-up and periodic rescans only).
    """
    from ..stages.transcription import job_dir

    waiting = store.jobs(JobState.APPROVED, JobState.RENDERED)
    leftovers = sweep_archived and any(
        job_dir(config, job).exists() for job in store.jobs(JobState.ARCHIVED)
    )
    if not waiting and not leftovers:
        return 0
    from ..archive import archive_pending
    from ..stages.letter import finish_all_approved

    try:
        done = finish_all_approved(config, store) + archive_pending(config, store)
    except TranscribeError as exc:
        reporter.note(f"letters postponed: {exc}")
        return 0
    for job in done:
        reporter.job(job, str(job.state))
    return len(done)


def recover(config: Config, store: JobStore, reporter: Reporter) -> None:
    """Start-up sweep: free dead claims, finish half-done intakes, drop stale temp files.
    In platform mode claims and letters belong to the workers: intake only."""
    timeout = config.limits.claim_timeout_s
    released = [] if config.platform else store.release_stale_claims(timeout)
    finished = finish_pending_intake(config, store, timeout_s=timeout)
    removed = sweep_temp_files(config)
    archived = (
        0 if config.platform else finish_letters(config, store, reporter, sweep_archived=True)
    )
    if released or finished or removed or archived:
        reporter.note(
            f"recovered: {len(released)} interrupted job(s) requeued, "
            f"{len(finished)} intake(s) finished, {len(removed)} temp file(s) removed"
        )


class InboxEvents:
    """watchdog observer feeding a queue of paths; optional (``--once`` polls only)."""

    def __init__(self, inbox: Path) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        self.paths: queue.SimpleQueue[Path] = queue.SimpleQueue()
        paths = self.paths

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    if raw and not event.is_directory:
                        paths.put(Path(raw if isinstance(raw, str) else raw.decode()))

        self.observer = Observer()
        self.observer.schedule(Handler(), str(inbox), recursive=True)

    def __enter__(self) -> InboxEvents:
        self.observer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)

    def drain(self) -> set[Path]:
        found = set()
        while True:
            try:
                found.add(self.paths.get_nowait())
            except queue.Empty:
                return found


class Intake:
    """Pending inbox entries and the stability bookkeeping around them."""

    def __init__(self, config: Config, store: JobStore, reporter: Reporter) -> None:
        self.config = config
        self.store = store
        self.reporter = reporter
        self.tracker = StabilityTracker(config.limits.stable_seconds)
        self.pending: set[Path] = set()

    def add(self, paths: set[Path] | list[Path]) -> None:
        for path in paths:
            if is_ignored(path):
                continue
            if is_sidecar(path) and not path.is_symlink():
                self._wake_audio_of(path)
                continue
            self.pending.add(path)

    def add_all(self) -> None:
        """Everything in the inbox now (start-up scan, periodic rescan)."""
        self.add(list(scan_inbox(self.config.paths.inbox)))

    def _wake_audio_of(self, sidecar: Path) -> None:
        """A sidecar changed: the audio beside it must be re-checked for stability."""
        stem = sidecar.name[: -len(".json")]
        for candidate in (sidecar.with_name(stem), *sidecar.parent.glob(f"{stem}.*")):
            if candidate != sidecar and (candidate.exists() or candidate.is_symlink()):
                self.pending.add(candidate)

    def step(self) -> list[Job]:
        """Take in every pending entry that has become stable."""
        taken = []
        for path in sorted(self.pending):
            if not (path.exists() or path.is_symlink()) or path.is_dir():
                self.pending.discard(path)
                self.tracker.forget(path)
                continue
            if not is_ready(path, self.tracker):
                continue
            self.pending.discard(path)
            self.tracker.forget(path)
            result = take_in(path, self.config, self.store)
            if result.job is not None and result.outcome != "skipped":
                self.reporter.job(result.job, result.outcome)
                taken.append(result.job)
        return taken


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """``kill`` stops the watcher like Ctrl-C: the job in hand is put back in the queue."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def watch(
    config: Config,
    *,
    once: bool,
    engine_factory: Callable[[], WhisperEngine],
    reporter: Reporter | None = None,
    stop: Callable[[], bool] | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> WatchSummary:
    """Run intake and transcription; ``once`` handles what is there now and returns
    (in platform mode once it is taken in and queued)."""
    reporter = reporter or NullReporter()
    summary = WatchSummary()
    with open_store(config, actor="watcher") as store, sigterm_as_interrupt():
        recover(config, store, reporter)
        intake = Intake(config, store, reporter)
        intake.add_all()
        if config.platform:  # files in; the intake commits queue the tasks
            if once:
                summary.taken += drain_intake(intake, poll_seconds)
                return summary
            _loop(config, intake, stop, poll_seconds, summary, lambda: None)
            return summary
        engine = engine_factory()  # validates model and device now; loads on first job
        if once:
            summary.taken += drain_intake(intake, poll_seconds)
            summary.transcribed += transcribe_pending(config, store, engine, reporter=reporter)
            return summary

        def work() -> None:
            summary.transcribed += transcribe_pending(
                config, store, engine, reporter=reporter, max_jobs=1
            )
            finish_letters(config, store, reporter)

        _loop(config, intake, stop, poll_seconds, summary, work)
    return summary


def _loop(
    config: Config,
    intake: Intake,
    stop: Callable[[], bool] | None,
    poll_seconds: float,
    summary: WatchSummary,
    work: Callable[[], None],
) -> None:
    """Take files in as they arrive (rescanning and recovering now and then), and do
    ``work`` between intake steps until ``stop`` says so."""
    with InboxEvents(config.paths.inbox) as events:
        last_scan = time.monotonic()
        while not (stop and stop()):
            intake.add(events.drain())
            if time.monotonic() - last_scan >= config.limits.scan_interval_s:
                recover(config, intake.store, intake.reporter)  # a worker may have died
                intake.add_all()
                last_scan = time.monotonic()
            summary.taken += intake.step()
            work()
            time.sleep(poll_seconds)


def drain_intake(intake: Intake, poll_seconds: float = POLL_SECONDS) -> list[Job]:
    """Wait until every pending entry has been taken in (``--once``, batch)."""
    taken: list[Job] = []
    while intake.pending:
        taken += intake.step()
        if intake.pending:
            time.sleep(poll_seconds)
    return taken
