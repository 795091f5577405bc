"""The overnight batch: take in the inbox, then transcribe everything pending, fast.

Jobs run urgent first, then oldest. Jobs that share client, author and language are
grouped and decoded together (see :mod:`transcribe.asr.batching`), within one priority
class so an urgent dictation never waits behind a normal one. Each job is claimed in
the store before work starts and committed on its own when done, so a batch that is
interrupted (Ctrl-C, kill, power cut) and started again transcribes nothing twice
and loses nothing. A JSON report (no personal data) is written to ``reports/``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..asr.batching import BatchSettings
from ..asr.engine import WhisperEngine
from ..config import Config
from ..fsutil import atomic_write_json
from ..progress import NullReporter, Reporter
from ..stages.transcription import release_claim, transcribe_group
from ..store import Job, JobState, JobStore, open_store
from .watcher import Intake, drain_intake, finish_letters, recover, sigterm_as_interrupt

REPORTS = "reports"
GROUP_MAX_FILES = 8
GROUP_MAX_AUDIO_S = 600.0


@dataclass(frozen=True)
class BatchOptions:
    until: datetime | None = None  # stop taking new jobs at this time
    max_jobs: int | None = None
    settings: BatchSettings | None = None  # None: chosen from the device


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


def free_gpu_memory_mb() -> int | None:
    """Free memory of GPU 0 from nvidia-smi (ctranslate2 does not report it)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.split()[0])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


def choose_settings(engine: WhisperEngine) -> BatchSettings:
    """Batch size from the device: more windows at once where memory allows."""
    if engine.device.device == "cuda":
        free = free_gpu_memory_mb() or 8000
        return BatchSettings(
            batch_size=32 if free >= 20000 else 16 if free >= 8000 else 8,
            piece_s=600.0,
            wave_s=1800.0,
        )
    return BatchSettings()


def plan_groups(queue: list[Job], limit: int | None) -> list[list[Job]]:
    """Consecutive queue runs of one priority, grouped by client, author and language."""
    groups: list[list[Job]] = []
    remaining = list(queue[:limit] if limit is not None else queue)
    while remaining:
        head = remaining.pop(0)
        group, audio = [head], head.duration_s or 0.0
        if head.language in ("fr", "en"):
            for job in list(remaining):
                if len(group) >= GROUP_MAX_FILES or audio >= GROUP_MAX_AUDIO_S:
                    break
                if _group_key(job) == _group_key(head):
                    group.append(job)
                    audio += job.duration_s or 0.0
                    remaining.remove(job)
        groups.append(group)
    return groups


def _group_key(job: Job) -> tuple[str, str, str | None, str | None]:
    return (job.priority, job.client, job.author, job.language)


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
    settings = options.settings or choose_settings(engine)
    report.device, report.settings = asdict(engine.device), asdict(settings)
    with open_store(config, actor="batch") as store, sigterm_as_interrupt():
        recover(config, store, reporter)
        intake = Intake(config, store, reporter)
        intake.add_all()
        drain_intake(intake)
        try:
            _transcribe_all(config, store, engine, settings, options, reporter, report)
            finish_letters(config, store, reporter)
        except KeyboardInterrupt:
            report.stopped_by = "interrupted"
            raise
        finally:
            report.pending_left = len(store.jobs(JobState.RECEIVED))
            report.wall_s = round(time.monotonic() - started, 2)
            write_report(config, report)
    return report


def _transcribe_all(
    config: Config,
    store: JobStore,
    engine: WhisperEngine,
    settings: BatchSettings,
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
            finished = transcribe_group(config, store, engine, claimed, settings)
        except BaseException:
            for job in claimed:
                release_claim(store, job.id)
            raise
        for job in finished:
            report.jobs.append(_job_entry(job))
            reporter.job_done(job)
    if options.max_jobs is not None and len(queue) > options.max_jobs:
        report.stopped_by = "max-jobs"


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
