"""Stages of a job, each an idempotent function of the job id.

A stage reads the job's committed state and files, writes its result as a file in
the job's work folder (atomically), and only then commits the next state. A crash
anywhere leaves the job in its last committed state, and running the stage again
redoes only the unfinished work. A stage never leaves a half-written result behind.

Every commit of a run is fenced by the attempt count its claim returned (the claimed
:class:`Job`'s ``attempts``): when the job was handed to a newer run meanwhile (a
worker taken for dead, its task run again elsewhere), the late run's result is
dropped, files included, since they are written inside the fenced transaction.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..asr.engine import WhisperEngine
from ..asr.pipeline import Dictation, Transcribed, transcribe_audio
from ..config import ClientConfig, Config
from ..draft import DRAFT_NAME, new_draft, save_draft
from ..errors import AudioError, ModelError, StaleAttempt, StateError
from ..fsutil import atomic_write_json, fsync_dir, remove_files, write_failure
from ..progress import NullReporter, Reporter
from ..store import Job, JobState, JobStore, Transaction
from .intake import safe_name

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# Jobs transcribed together (their windows decoded in shared batches), and how much
# audio at most: a group is claimed at once and released together if interrupted.
GROUP_MAX_FILES = 8
GROUP_MAX_AUDIO_S = 600.0
TRANSCRIPT_NAME = "transcript.json"
#: The reason ``transcribe retry`` gives, which the interruption count starts from.
RETRY_REASON = "retry"


def job_dir(config: Config, job: Job) -> Path:
    return config.paths.work / "jobs" / job.id


def transcript_path(config: Config, job: Job) -> Path:
    return job_dir(config, job) / TRANSCRIPT_NAME


def draft_path(config: Config, job: Job) -> Path:
    return job_dir(config, job) / DRAFT_NAME


def audio_file(config: Config, job: Job) -> Path | None:
    """The job's audio on this machine, if it is here (the review plays it)."""
    path = config.paths.home / job.audio_path if job.audio_path else None
    return path if path is not None and path.is_file() else None


def sidecar_fields(config: Config, job: Job) -> dict[str, str]:
    """Letter fields the sender already gave (patient, author...) pre-fill the draft."""
    path = job_dir(config, job) / "sidecar.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    keys = ("author", "patient", "matter", "document_type", "recipient", "reference")
    return {key: data[key] for key in keys if data.get(key)}


def dictation_of(config: Config, job: Job) -> Dictation:
    """The job's client, author and expected language (sidecar, else author, else client)."""
    client = config.client(job.client)
    assert client is not None  # checked by _refuse
    language = job.language if job.language in ("fr", "en") else None
    return Dictation(client, job.author, language, whose=_whose(config, job, client))


def _whose(config: Config, job: Job, client: ClientConfig) -> str:
    """Whose setting the expected language is, for the secretary's warning."""
    path = job_dir(config, job) / "sidecar.json"
    if path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("language"):
        return "the sidecar's"
    if job.author and client.author_language.get(job.author):
        return "the author's"
    return "the client's"


def transcribe_job(config: Config, store: JobStore, engine: WhisperEngine, job: Job) -> Job:
    """Transcribe one claimed job; transcript and draft are written before the state moves."""
    [done] = transcribe_group(config, store, engine, [job])
    return done


def transcribe_group(
    config: Config, store: JobStore, engine: WhisperEngine, jobs: Sequence[Job]
) -> list[Job]:
    """Transcribe claimed jobs together: their windows share the decoder's batches."""
    refusals = {job.id: _refuse(config, store, job) for job in jobs}
    refused = [r for r in refusals.values() if r is not None]
    jobs = [job for job in jobs if refusals[job.id] is None]
    if not jobs:
        return refused
    items = [
        (config.paths.home / (job.audio_path or ""), dictation_of(config, job)) for job in jobs
    ]
    try:
        results = transcribe_audio(config, engine, items)
    except ModelError:
        for job in jobs:
            commit(store, job, JobState.RECEIVED, reason="model unavailable")
        raise
    except (OSError, RuntimeError, MemoryError) as exc:
        return refused + [fail_job(store, job, exc) for job in jobs]
    return refused + [
        quarantine_job(config, store, job, str(result))
        if isinstance(result, AudioError)
        else save_results(config, store, job, result)
        for job, result in zip(jobs, results, strict=True)
    ]


def commit(store: JobStore, job: Job, to_state: JobState, **values: Any) -> Job:
    """A run's transition, fenced by the attempt its claim returned: a run whose job
    was handed to a newer one writes nothing, and gets the job as it now is."""
    try:
        return store.transition(job.id, to_state, expect_attempts=job.attempts, **values)
    except StaleAttempt as exc:
        log.warning("%s", exc)
        return store.get(job.id)


def _refuse(config: Config, store: JobStore, job: Job) -> Job | None:
    """Jobs that must not be attempted again: crashed too often, or client removed."""
    interrupted = interruptions(store, job)
    if interrupted >= MAX_ATTEMPTS:
        reason = f"transcription was interrupted {interrupted} times; retry by hand"
        return commit(store, job, JobState.FAILED, reason=reason)
    if config.client(job.client) is None:
        reason = f"client {job.client!r} is no longer in the config"
        return commit(store, job, JobState.FAILED, reason=reason)
    return None


def interruptions(store: JobStore, job: Job) -> int:
    """Runs of this job that started and never finished, since it was last retried by
    hand. The attempt count itself never goes back (it fences late runs), so past the
    cheap case the audit trail tells how many claims came after the last retry."""
    if job.attempts <= MAX_ATTEMPTS:
        return max(job.attempts - 1, 0)
    claims = 0
    for event in store.iter_events(job.id):
        if event["action"] == "state" and event["detail"] == RETRY_REASON:
            claims = 0
        elif event["to_state"] == JobState.TRANSCRIBING or (
            event["action"] == "attempt" and event["from_state"] == JobState.TRANSCRIBING
        ):
            claims += 1
    return max(claims - 1, 0)


def fail_job(store: JobStore, job: Job, exc: BaseException) -> Job:
    """A resource fault (not bad input): ``failed`` with a one-line reason, retryable."""
    reason = f"transcription failed: {' '.join(str(exc).split())[:400]}"
    return commit(store, job, JobState.FAILED, reason=reason, claimed_by=None, claimed_at=None)


def save_results(config: Config, store: JobStore, job: Job, result: Transcribed) -> Job:
    """Write transcript.json and draft.json, then (only then) commit ``review``.

    The files are written inside the transaction that commits ``review``, after its
    fence (the row is locked, the attempt checked): a late run of a job someone else
    has since transcribed, whose draft a secretary may be editing, overwrites nothing.
    The warnings go to the draft (the review loop shows them) and to the job store
    (``status`` shows them without opening any file).
    """
    transcript, draft = result.transcript, result.draft
    audio = config.paths.home / (job.audio_path or "")
    transcript.update(job_id=job.id, client=job.client)
    transcript["audio"].update(file=audio.name, sha256=job.content_hash)
    paths = (transcript_path(config, job), draft_path(config, job))

    def write(_tx: Transaction, _job: Job) -> None:
        atomic_write_json(paths[0], transcript)
        first = new_draft(
            job.id,
            transcript["language"],
            draft.text,
            draft.words,
            sidecar_fields(config, job),
            draft.record,
            warnings=result.warnings,
        )
        save_draft(paths[1], first)

    try:
        return commit(
            store,
            job,
            JobState.REVIEW,
            expect=JobState.TRANSCRIBING,
            in_transaction=write,
            language=transcript["language"],
            warnings=result.warnings,
            claimed_by=None,
            claimed_at=None,
        )
    except OSError as exc:  # disk full, quota, read-only: a resource fault, retryable
        remove_files(*paths)  # a transcript without its draft is no result
        failure = write_failure(exc, "the transcript", paths[0].parent, retry=job.id)
        return fail_job(store, job, failure)


def quarantine_job(config: Config, store: JobStore, job: Job, reason: str) -> Job:
    """Audio that looked fine at intake but cannot be decoded: out of the queue, kept.
    The audio moves inside the fenced transaction: a late run moves nothing."""
    source = config.paths.home / (job.audio_path or "")
    target = config.paths.quarantine / job.id / safe_name(job.source_name)

    def move(_tx: Transaction, _job: Job) -> None:
        target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        if source.exists():
            os.replace(source, target)
            fsync_dir(target.parent)

    return commit(
        store,
        job,
        JobState.QUARANTINED,
        in_transaction=move,
        reason=reason,
        audio_path=os.path.relpath(target, config.paths.home),
        claimed_by=None,
        claimed_at=None,
    )


def plan_groups(queue: Sequence[Job], limit: int | None = None) -> list[list[Job]]:
    """Consecutive queue runs of one priority, at most GROUP_MAX_FILES files and
    GROUP_MAX_AUDIO_S of audio each: an urgent dictation never waits behind a normal
    one, and a long one is decoded on its own."""
    groups: list[list[Job]] = []
    for job in queue[:limit] if limit is not None else queue:
        group = groups[-1] if groups else None
        audio = sum(j.duration_s or 0.0 for j in group) if group else 0.0
        if (
            group is None
            or group[0].priority != job.priority
            or len(group) >= GROUP_MAX_FILES
            or audio + (job.duration_s or 0.0) > GROUP_MAX_AUDIO_S
        ):
            groups.append([job])
        else:
            group.append(job)
    return groups


def transcribe_pending(
    config: Config,
    store: JobStore,
    engine: WhisperEngine,
    *,
    reporter: Reporter | None = None,
    max_jobs: int | None = None,
    deadline: float | None = None,
) -> list[Job]:
    """Claim and transcribe waiting jobs, a group at a time, until none is left (or a
    limit is reached)."""
    reporter = reporter or NullReporter()
    done: list[Job] = []
    while max_jobs is None or len(done) < max_jobs:
        if deadline is not None and time.time() >= deadline:
            break
        left = None if max_jobs is None else max_jobs - len(done)
        queue = [j for j in store.jobs(JobState.RECEIVED) if j.inbox_path is None]
        if not queue:
            break
        group = plan_groups(queue, left)[0]
        claimed = [job for job in map(store.claim, (j.id for j in group)) if job is not None]
        if claimed:  # else another worker took them: look at the queue again
            done += transcribe_claimed(config, store, engine, claimed, reporter)
    return done


def transcribe_claimed(
    config: Config, store: JobStore, engine: WhisperEngine, claimed: list[Job], reporter: Reporter
) -> list[Job]:
    """Transcribe a claimed group; on any interruption the claims go back to the queue."""
    for job in claimed:
        reporter.job(job, "transcribing")
    try:
        finished = transcribe_group(config, store, engine, claimed)
    except BaseException:
        for job in claimed:
            release_claim(store, job.id, attempt=job.attempts)
        raise
    for job in finished:
        reporter.job(job, str(job.state))
    return finished


def retry_job(config: Config, store: JobStore, job_id: str) -> Job:
    """A failed job goes back to the stage that failed: letter if approved, else transcription."""
    job = store.get(job_id)
    if job.state != JobState.FAILED:
        raise StateError(f"job {job_id} is {job.state}, only failed jobs are retried")
    approved = (job_dir(config, job) / "approved.json").is_file()
    target = JobState.APPROVED if approved else JobState.RECEIVED
    # The attempt count stays: it fences runs still out there. The interruption budget
    # starts again from this audited retry (see interruptions()).
    return store.transition(job_id, target, reason=RETRY_REASON)


def release_claim(store: JobStore, job_id: str, *, attempt: int | None = None) -> None:
    """Put an interrupted job back in the queue (it will be transcribed again, once);
    with ``attempt``, only while that run still has the job."""
    try:
        job = store.get(job_id)
        if job.state == JobState.TRANSCRIBING:
            store.transition(
                job_id,
                JobState.RECEIVED,
                reason="interrupted",
                expect_attempts=attempt,
                claimed_by=None,
                claimed_at=None,
            )
    except StaleAttempt:
        log.info("job %s: a newer run has it; not released", job_id)
    except Exception:
        log.exception("could not release claim on job %s", job_id)
