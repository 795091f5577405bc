"""Platform mode: fenced runs, and tasks deferred with the state change that calls
for them, on a real PostgreSQL server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLIENT, set_config, use_store
from tests.pgserver import PgServer
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


def test_queue_settings_are_checked_when_loading(home: Path) -> None:
    with pytest.raises(ConfigError, match="needs a PostgreSQL job store"):
        set_config(home, enabled="true")
