"""The overnight batch in platform mode, as real `cli.py batch` processes on a real
PostgreSQL server with the real model: it takes the inbox in (which queues the
tasks), then runs this machine's transcription queue through the worker's own task
functions, fenced, until no task waits, and writes its report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT, PROJECT, query
from tests.test_worker import depths, platform  # noqa: F401 (platform: a fixture)
from transcribe.config import Config
from transcribe.runners.batch import BatchOptions, NullBatchReporter, run_batch
from transcribe.status import platform_status
from transcribe.store import Job, JobState, open_store

pytestmark = pytest.mark.slow


def drop(config: Config, clips: list[Path], *priorities: str) -> None:
    """One dictation per priority given, ``d<N>.wav``, with a sidecar naming it."""
    for index, priority in enumerate(priorities):
        target = config.paths.inbox / CLIENT / f"d{index}.wav"
        shutil.copyfile(clips[index], target)
        sidecar = target.with_name(f"{target.name}.json")
        sidecar.write_text(json.dumps({"priority": priority}), encoding="utf-8")


def batch(config: Config, *args: str) -> tuple[str, dict[str, Any]]:
    """Run `cli.py batch` (it must exit 0): its output, and the report it names."""
    command = [sys.executable, str(PROJECT / "cli.py"), "--home", str(config.paths.home)]
    done = subprocess.run(
        [*command, "batch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "400"},  # one line each, however long the path
    )
    assert done.returncode == 0, done.stderr
    [path] = [
        line.removeprefix("report: ") for line in done.stdout.splitlines() if "report: " in line
    ]
    return done.stdout, json.loads(Path(path).read_text(encoding="utf-8"))


def jobs_by_source(config: Config) -> dict[str, Job]:
    with open_store(config) as store:
        return {job.source_name: job for job in store.jobs()}


def transcription_tasks(config: Config) -> list[tuple[str, str, int]]:
    """(status, job id, attempt it was deferred at) of every transcription task."""
    with open_store(config) as store:
        rows = query(
            store,
            "SELECT status, args FROM procrastinate_jobs WHERE task_name = ? ORDER BY id",
            "transcribe.transcribe",
        )
    return [(str(status), args["job_id"], args["attempt"]) for status, args in rows]


def assert_fenced_once(config: Config, job: Job) -> None:
    """Transcribed once, by a task's counted run (``begin_attempt``, as a worker's), not
    by a claim of the embedded batch (whose audit says only "claimed")."""
    assert (job.state, job.attempts) == (JobState.REVIEW, 1), job.reason
    with open_store(config) as store:
        events = [(e["to_state"], e["detail"]) for e in store.events(job.id)]
    assert ("transcribing", "claimed, attempt 1") in events
    assert [to_state for to_state, _ in events].count("review") == 1


def test_a_platform_batch_takes_in_runs_the_queue_dry_and_reports(
    platform: Config,  # noqa: F811
    clips: list[Path],
) -> None:
    drop(platform, clips, "normal", "normal")
    output, report = batch(platform)
    assert "2 job(s) pending" in output
    assert "batch done: 2 job(s) transcribed" in output and "0 still pending" in output

    jobs = jobs_by_source(platform)
    for job in jobs.values():
        assert_fenced_once(platform, job)
    ids = {job.id for job in jobs.values()}
    assert sorted(transcription_tasks(platform)) == sorted(("succeeded", i, 0) for i in ids)
    view = platform_status(platform)
    stages = {name: counts for name, counts in depths(view).items() if name != "maintenance"}
    assert stages == {"transcribe": (0, 0), "transcribe-gpu": (0, 0), "letters": (0, 0)}
    assert view["workers"] == [] and view["stalled"] == []  # both unregistered, gracefully

    assert {entry["id"] for entry in report["jobs"]} == ids
    assert {entry["state"] for entry in report["jobs"]} == {"review"}
    assert (report["stopped_by"], report["pending_left"], report["failures"]) == ("done", 0, 0)
    assert "d0.wav" not in json.dumps(report)  # ids, never a file name


def test_max_jobs_leaves_the_rest_queued_for_the_next_batch(
    platform: Config,  # noqa: F811
    clips: list[Path],
) -> None:
    drop(platform, clips, "normal", "urgent")
    output, report = batch(platform, "--max-jobs", "1")
    assert "batch max-jobs: 1 job(s) transcribed" in output and "1 still pending" in output
    jobs = jobs_by_source(platform)
    urgent, normal = jobs["d1.wav"], jobs["d0.wav"]
    assert_fenced_once(platform, urgent)  # the queue's order: urgent first
    assert (normal.state, normal.attempts) == (JobState.RECEIVED, 0)
    assert ("todo", normal.id, 0) in transcription_tasks(platform)  # still queued
    assert [entry["id"] for entry in report["jobs"]] == [urgent.id]
    assert (report["stopped_by"], report["pending_left"]) == ("max-jobs", 1)

    output, report = batch(platform)  # the next run (or any worker) takes it
    assert "batch done: 1 job(s) transcribed" in output
    assert_fenced_once(platform, jobs_by_source(platform)["d0.wav"])
    assert [entry["id"] for entry in report["jobs"]] == [normal.id]
    assert {status for status, _, _ in transcription_tasks(platform)} == {"succeeded"}


class LongFirstRun(NullBatchReporter):
    """Records the runs that start; the first lasts past ``until`` (its reporter call
    is inside the task), so the deadline falls while a task runs."""

    def __init__(self, until: datetime) -> None:
        self.until = until
        self.started_runs: list[str] = []

    def group_started(self, jobs: list[Job]) -> None:
        self.started_runs += [job.id for job in jobs]
        while datetime.now(UTC) <= self.until:
            time.sleep(0.05)


def test_until_lets_the_running_task_finish_and_takes_no_other(
    platform: Config,  # noqa: F811
    clips: list[Path],
    engine_factory,
) -> None:
    drop(platform, clips, "normal", "urgent")
    engine = engine_factory(platform)
    engine.load()  # before the clock starts: the first task starts well before `until`
    until = datetime.now(UTC) + timedelta(seconds=5)
    reporter = LongFirstRun(until)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        report = run_batch(platform, lambda: engine, BatchOptions(until=until), reporter)
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # the worker's loop leaves SIG_DFL
    urgent, normal = jobs_by_source(platform)["d1.wav"], jobs_by_source(platform)["d0.wav"]
    assert reporter.started_runs == [urgent.id]
    assert [(entry["id"], entry["state"]) for entry in report.jobs] == [(urgent.id, "review")]
    assert (report.stopped_by, report.pending_left) == ("deadline", 1)
    assert ("todo", normal.id, 0) in transcription_tasks(platform)
