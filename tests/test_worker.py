"""Platform mode: fenced runs, tasks deferred with the state change, `transcribe
worker` processes on a real PostgreSQL server with the real model, and what `status`
shows of the queue."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import CLIENT, PROJECT, execute, set_config, use_store
from tests.pgserver import PgServer
from tests.test_faults import EN_FIELDS  # the riverside-clinic letter's fields
from tests.test_letter import approved_job
from transcribe.asr.pipeline import transcribe_audio
from transcribe.config import Config
from transcribe.errors import ConfigError, StaleAttempt
from transcribe.stages.intake import take_in
from transcribe.stages.letter import letter_path, render_job
from transcribe.stages.transcription import (
    MAX_ATTEMPTS,
    dictation_of,
    draft_path,
    interruptions,
    retry_job,
    save_results,
    transcript_path,
)
from transcribe.status import platform_status
from transcribe.store import Job, JobState, JobStore, Transaction, new_job_id, open_store
from transcribe.workspace import init_workspace

TAKE = (JobState.RECEIVED, JobState.TRANSCRIBING)


@pytest.fixture
def store(config: Config) -> Iterator[JobStore]:
    with open_store(config) as opened:
        yield opened


def waiting_job(store: JobStore, **values: object) -> Job:
    job_id = new_job_id()
    return store.insert_job(
        id=job_id, client=CLIENT, source_name="d.wav", content_hash=job_id, **values
    )


def take_over(store: JobStore, job: Job) -> Job:
    """What a re-run of the job's task does once its first worker is taken for dead."""
    newer = store.begin_attempt(
        job.id, 0, states=TAKE, take_over=True, to_state=JobState.TRANSCRIBING
    )
    assert newer is not None and newer.attempts == job.attempts + 1
    return newer


# -- fencing: a run commits only with the job's current attempt ---------------------------


@pytest.mark.both_backends
def test_a_stale_attempt_commits_nothing_not_even_its_hook(store: JobStore) -> None:
    claimed = store.claim(waiting_job(store).id)
    assert claimed is not None and claimed.attempts == 1
    newer = take_over(store, claimed)
    ran: list[str] = []

    def hook(_tx: Transaction, job: Job) -> None:
        ran.append(job.id)

    with pytest.raises(StaleAttempt, match="at attempt 2, not 1"):
        store.transition(
            claimed.id, JobState.REVIEW, expect_attempts=1, in_transaction=hook, reason="late"
        )
    assert ran == [] and store.get(claimed.id).state == JobState.TRANSCRIBING
    done = store.transition(claimed.id, JobState.REVIEW, expect_attempts=2, in_transaction=hook)
    assert done.state == JobState.REVIEW and ran == [claimed.id]
    audit = [(e["action"], e["from_state"], e["to_state"]) for e in store.events(newer.id)]
    assert audit[-2:] == [("attempt", "transcribing", None), ("state", "transcribing", "review")]


@pytest.mark.both_backends
def test_a_task_runs_only_for_the_deferral_it_was_made_for(store: JobStore) -> None:
    job = waiting_job(store)
    kwargs = {"states": TAKE, "to_state": JobState.TRANSCRIBING}
    assert store.begin_attempt(job.id, 5, **kwargs) is None  # another deferral's task
    first = store.begin_attempt(job.id, 0, **kwargs)
    assert first is not None and (first.state, first.attempts) == (JobState.TRANSCRIBING, 1)
    assert store.begin_attempt(job.id, 0, **kwargs) is None  # a duplicate first run
    assert store.begin_attempt(job.id, 0, take_over=True, **kwargs) is not None  # a re-run
    in_intake = waiting_job(store, inbox_path="inbox/x/d.wav")
    assert store.begin_attempt(in_intake.id, 0, take_over=True, **kwargs) is None


@pytest.mark.both_backends
def test_the_attempt_count_never_goes_back_but_a_retry_resets_the_budget(
    config: Config, store: JobStore
) -> None:
    job = waiting_job(store)
    for _ in range(MAX_ATTEMPTS + 1):
        claimed = store.claim(job.id)
        assert claimed is not None
        store.transition(job.id, JobState.RECEIVED, reason="interrupted")
    assert interruptions(store, claimed) == MAX_ATTEMPTS
    store.transition(job.id, JobState.FAILED, reason="interrupted too often")
    retried = retry_job(config, store, job.id)
    assert retried.attempts == MAX_ATTEMPTS + 1  # a late run of attempt 1..4 stays fenced
    again = store.claim(job.id)
    assert again is not None and again.attempts == MAX_ATTEMPTS + 2
    assert interruptions(store, again) == 0


@pytest.mark.slow
@pytest.mark.both_backends
def test_a_zombie_transcription_writes_nothing(
    config: Config, store: JobStore, clips: list[Path], engine_factory
) -> None:
    """A run taken for dead that comes back with its result: refused, and the draft
    the newer run wrote (which a secretary may be editing) is left alone."""
    dropped = config.paths.inbox / CLIENT / "d.wav"
    shutil.copyfile(clips[0], dropped)
    taken = take_in(dropped, config, store).job
    assert taken is not None
    zombie = store.claim(taken.id)
    assert zombie is not None
    audio = config.paths.home / (zombie.audio_path or "")
    [result] = transcribe_audio(
        config, engine_factory(config), [(audio, dictation_of(config, zombie))]
    )
    newer = take_over(store, zombie)

    late = save_results(config, store, zombie, result)
    assert (late.state, late.attempts) == (JobState.TRANSCRIBING, 2)
    assert not transcript_path(config, zombie).exists() and not draft_path(config, zombie).exists()
    done = save_results(config, store, newer, result)
    assert done.state == JobState.REVIEW and draft_path(config, done).is_file()
    reviews = [e for e in store.events(done.id) if e["to_state"] == JobState.REVIEW]
    assert len(reviews) == 1


@pytest.mark.both_backends
def test_a_zombie_letter_run_renders_nothing(config: Config, store: JobStore) -> None:
    job_id = approved_job(config)
    letters = (JobState.APPROVED, JobState.RENDERED)
    first = store.begin_attempt(job_id, 0, states=letters)
    assert first is not None and first.state == JobState.APPROVED
    assert store.begin_attempt(job_id, 0, states=letters, take_over=True) is not None
    with pytest.raises(StaleAttempt):
        render_job(config, store, job_id, attempt=first.attempts)
    assert not letter_path(config, first).exists()
    assert store.get(job_id).state == JobState.APPROVED


# -- platform mode: tasks deferred in the transaction of the change ------------------------


@pytest.fixture
def platform(tmp_path: Path, pg_server: PgServer) -> Iterator[Config]:
    """A demo workspace on its own database of the session's server, queue on."""
    database = pg_server.create_database()
    home = tmp_path / "home"
    init_workspace(home, demo=True)
    set_config(home, stable_seconds=0.3, second_pass="false")
    use_store(home, pg_server.url(database))
    try:
        yield set_config(home, enabled="true")
    finally:
        pg_server.drop_database(database)


def tasks(store: JobStore) -> list[tuple[str, str, int, dict[str, object]]]:
    rows = store.atomic(
        lambda tx: tx.execute(
            "SELECT task_name, queue_name, priority, args FROM procrastinate_jobs ORDER BY id"
        ).fetchall()
    )
    return [tuple(row) for row in rows]


def fail(_tx: Transaction, _job: Job) -> None:
    raise RuntimeError("the transaction dies here")


def test_a_task_commits_with_the_change_that_calls_for_it(platform: Config) -> None:
    with open_store(platform) as store:
        with pytest.raises(RuntimeError):
            waiting_job(store, in_transaction=fail)
        assert store.jobs() == [] and tasks(store) == []  # neither the job nor its task

        job = waiting_job(store, priority="urgent")
        assert tasks(store) == [
            ("transcribe.transcribe", "transcribe", 10, {"job_id": job.id, "attempt": 0})
        ]
        review = waiting_job(store, state=JobState.REVIEW)
        with pytest.raises(RuntimeError):
            store.transition(review.id, JobState.APPROVED, in_transaction=fail)
        assert store.get(review.id).state == JobState.REVIEW and len(tasks(store)) == 1
        store.transition(review.id, JobState.APPROVED)
        assert tasks(store)[-1] == (
            "transcribe.letter",
            "letters",
            0,
            {"job_id": review.id, "attempt": 0},
        )

        in_intake = waiting_job(store, inbox_path="inbox/c/d.wav")
        assert len(tasks(store)) == 2  # not workable before its audio is in place
        store.update(in_intake.id, inbox_path=None)
        assert tasks(store)[-1][3] == {"job_id": in_intake.id, "attempt": 0}


def test_a_worker_refuses_the_embedded_store_in_one_line(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), "--home", str(home), "worker"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ConfigError.exit_code
    assert done.stderr.count("\n") == 1 and "embedded SQLite store" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_queue_settings_are_checked_when_loading(home: Path) -> None:
    with pytest.raises(ConfigError, match="needs a PostgreSQL job store"):
        set_config(home, enabled="true")


# -- workers as processes: watch takes in, workers transcribe and write letters ----------


class Workers:
    """``transcribe worker`` processes of one workspace, stopped at the end of a test."""

    def __init__(self, home: Path, logs: Path) -> None:
        self.cli = [sys.executable, str(PROJECT / "cli.py"), "--home", str(home)]
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *queues: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker{len(self.started)}.log"
        args = [a for queue in queues for a in ("--queue", queue)]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [*self.cli, "-v", "worker", *args], stdout=sink, stderr=subprocess.STDOUT
            )
        self.started.append(process)
        return process

    def output(self, index: int) -> str:
        return (self.logs / f"worker{index}.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> list[int | None]:
        """SIGTERM: a worker finishes its tasks, unregisters, and exits 0."""
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.started:
            try:
                codes.append(process.wait(timeout=60))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes


@pytest.fixture
def workers(platform: Config, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(platform.paths.home, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def wait_for(config: Config, job_id: str, *states: JobState, timeout: float = 180.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        with open_store(config) as store:
            job = store.get(job_id)
        if job.state in states or time.monotonic() > deadline:
            assert job.state in states, f"{job_id} still {job.state} ({job.reason})"
            return job
        time.sleep(0.05)


def cli(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(PROJECT / "cli.py"), "--home", str(config.paths.home)]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.slow
def test_watch_takes_in_and_workers_transcribe_and_write_the_letter(
    platform: Config, workers: Workers, clips: list[Path]
) -> None:
    shutil.copyfile(clips[0], platform.paths.inbox / CLIENT / "d0.wav")
    assert "1 file(s) taken in, 0 job(s)" in cli(platform, "watch", "--once").stdout
    with open_store(platform) as store:
        [job] = store.jobs()
        assert job.state == JobState.RECEIVED and [t[0] for t in tasks(store)] == [
            "transcribe.transcribe"
        ]
    workers.start("transcribe")
    workers.start("letters")
    reviewed = wait_for(platform, job.id, JobState.REVIEW)
    assert reviewed.attempts == 1 and draft_path(platform, reviewed).is_file()

    fields = [a for key, value in EN_FIELDS.items() for a in ("--field", f"{key}={value}")]
    approved = cli(platform, "approve", job.id, *fields).stdout
    assert "queued for the letters workers" in approved
    archived = wait_for(platform, job.id, JobState.ARCHIVED)
    assert archived.attempts == 2  # one run of each stage
    assert workers.stop() == [0, 0]
    assert f"{job.id}  {CLIENT:<18} review" in workers.output(0)
    assert f"{job.id}  {CLIENT:<18} archived" in workers.output(1)
    assert "d0.wav" not in workers.output(0) + workers.output(1)  # ids, never file names
    cli(platform, "audit", "verify")
    with open_store(platform) as store:
        statuses = store.atomic(
            lambda tx: tx.execute(
                "SELECT status, task_name, args::text FROM procrastinate_jobs WHERE task_name"
                " <> 'transcribe.retry_stalled'"
            ).fetchall()
        )
    assert sorted(s for (s, *_) in statuses) == ["succeeded", "succeeded"], statuses


def long_dictation(clips: list[Path], target: Path) -> Path:
    """Several clips end to end: long enough to kill a worker in the middle of it."""
    subprocess.run(["sox", *map(str, clips[:2]), str(target)], check=True)
    return target


@pytest.mark.slow
def test_a_killed_workers_job_is_taken_over_and_transcribed_once(
    platform: Config, workers: Workers, clips: list[Path]
) -> None:
    config = set_config(platform.paths.home, heartbeat_s=0.5, stalled_after_s=2, check_stalled_s=1)
    long_dictation(clips, config.paths.inbox / CLIENT / "long.wav")
    cli(config, "watch", "--once")
    with open_store(config) as store:
        [job] = store.jobs()
    first = workers.start("transcribe")
    wait_for(config, job.id, JobState.TRANSCRIBING, timeout=120)
    assert [job.id] in running(platform_status(config)).values()  # status sees it at work
    first.kill()  # SIGKILL, mid-transcription: no goodbye, its task stays `doing`
    first.wait()
    stalled = wait_for_stalled(config)
    assert [task["job_id"] for task in stalled] == [job.id]
    with open_store(config) as store:
        assert store.get(job.id).state == JobState.TRANSCRIBING
    workers.start("transcribe")
    done = wait_for(config, job.id, JobState.REVIEW, timeout=180)
    assert done.attempts == 2 and transcript_path(config, done).is_file()
    with open_store(config) as store:
        events = store.events(job.id)
        [retried] = store.atomic(
            lambda tx: tx.execute(
                "SELECT status, attempts FROM procrastinate_jobs WHERE task_name = ?",
                ("transcribe.transcribe",),
            ).fetchall()
        )
    assert [e["to_state"] for e in events].count("review") == 1  # transcribed once
    assert any("taken over" in (e["detail"] or "") for e in events)
    assert tuple(retried) == ("succeeded", 2)  # run, retried as stalled, run again
    assert "retried: its worker was silent" in workers.output(1)
    assert platform_status(config)["stalled"] == []
    cli(config, "audit", "verify")


# -- status: the queue as an operator sees it --------------------------------------------


def depths(view: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {queue["name"]: (queue["todo"], queue["doing"]) for queue in view["queues"]}


def running(view: dict[str, Any]) -> dict[int, list[str | None]]:
    """Each worker seen, with the job ids of the tasks it runs."""
    return {w["id"]: [task["job_id"] for task in w["running"]] for w in view["workers"]}


def wait_for_stalled(config: Config, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The stalled tasks ``status`` shows, once there are some."""
    deadline = time.monotonic() + timeout
    while not (stalled := platform_status(config)["stalled"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return stalled


def as_worker(config: Config, queues: list[str], takes: int) -> tuple[int, list[int]]:
    """What a Procrastinate worker does at start and for each slot, without running
    anything: register (a heartbeat row), then fetch tasks (now ``doing``, its own)."""
    from procrastinate import App, PsycopgConnector

    async def register_and_fetch() -> tuple[int, list[int]]:
        app = App(connector=PsycopgConnector(conninfo=config.store.url, min_size=1, max_size=1))
        async with app.open_async():
            worker = await app.job_manager.register_worker()
            taken = [await app.job_manager.fetch_job(queues, worker) for _ in range(takes)]
        return worker, [task.id for task in taken if task is not None]

    return asyncio.run(register_and_fetch())


def test_status_shows_queue_depth_workers_and_stalled_tasks(platform: Config) -> None:
    config = set_config(platform.paths.home, heartbeat_s=1, stalled_after_s=5)
    with open_store(config) as store:
        urgent, normal = waiting_job(store, priority="urgent"), waiting_job(store)
        review = waiting_job(store, state=JobState.REVIEW)
        store.transition(review.id, JobState.APPROVED)
    view = platform_status(config)
    assert depths(view) == {
        "transcribe": (2, 0),
        "transcribe-gpu": (0, 0),
        "letters": (1, 0),
        "maintenance": (0, 0),
    }
    assert view["workers"] == [] and view["stalled"] == []

    busy, [task] = as_worker(config, ["transcribe"], takes=1)  # the urgent one first
    idle, _ = as_worker(config, ["letters"], takes=0)
    view = platform_status(config)
    assert depths(view)["transcribe"] == (1, 1)
    assert running(view) == {busy: [urgent.id], idle: []}
    assert view["workers"][0]["running"][0] == {
        "id": task,
        "task": "transcribe.transcribe",
        "queue": "transcribe",
        "job_id": urgent.id,
        "worker_id": busy,
    }
    assert view["stalled"] == []

    with open_store(config) as store:  # the busy one's machine died 10 s ago
        execute(
            store,
            "UPDATE procrastinate_workers SET last_heartbeat = NOW() - '10 s'::interval"
            " WHERE id = ?",
            busy,
        )
    view = platform_status(config)
    assert busy in running(view)  # heard from within the minute, but silent too long:
    assert [(t["job_id"], t["worker_id"]) for t in view["stalled"]] == [(urgent.id, busy)]
    with open_store(config) as store:  # pruned at another worker's start: gone
        execute(store, "DELETE FROM procrastinate_workers WHERE id = ?", busy)
    view = platform_status(config)
    assert running(view) == {idle: []}
    assert [(t["job_id"], t["worker_id"]) for t in view["stalled"]] == [(urgent.id, None)]
    assert normal.id not in json.dumps(view["stalled"])


def test_status_draws_the_queue_after_the_jobs_and_keeps_its_json(platform: Config) -> None:
    with open_store(platform) as store:
        job = waiting_job(store)
    worker, [_task] = as_worker(platform, ["transcribe"], takes=1)
    runner = CliRunner()
    home = ["--home", str(platform.paths.home)]
    drawn = runner.invoke(app, [*home, "status"])
    assert drawn.exit_code == 0, drawn.output
    drawn_at = drawn.output.index
    assert drawn_at(job.id) < drawn_at("transcribe-gpu") < drawn_at("workers seen")  # jobs first
    assert re.search(
        rf"worker {worker}  heartbeat \d+ s ago  transcribe.transcribe job {job.id}", drawn.output
    )
    assert "stalled tasks (worker silent over 60 s, or gone): none" in drawn.output

    listed = runner.invoke(app, [*home, "status", "--json"])
    assert [row["id"] for row in json.loads(listed.output)] == [job.id]  # still the list
    only = runner.invoke(app, [*home, "status", "--queues"])
    assert only.exit_code == 0 and job.id in only.output
    assert CLIENT not in only.output and "d.wav" not in only.output  # ids, never names
    shown = json.loads(runner.invoke(app, [*home, "status", "--queues", "--json"]).output)
    assert depths(shown)["transcribe"] == (0, 1) and running(shown) == {worker: [job.id]}
    assert set(shown) == {"queues", "workers", "stalled", "stalled_after_s", "seen_within_s"}


def test_status_in_embedded_mode_has_no_queue(home: Path) -> None:
    runner = CliRunner()
    drawn = runner.invoke(app, ["--home", str(home), "status"])
    assert drawn.exit_code == 0 and drawn.output == "no jobs yet\n"
    refused = runner.invoke(app, ["--home", str(home), "status", "--queues"])
    assert refused.exit_code == ConfigError.exit_code
    assert "only in platform mode" in refused.output and refused.output.count("\n") == 1
