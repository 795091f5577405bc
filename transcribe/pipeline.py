"""Stages of a job, each an idempotent function of the job id.

A stage reads the job's committed state and files, writes its result as a file in
the job's work folder (atomically), and only then commits the next state. A crash
anywhere leaves the job in its last committed state, and running the stage again
redoes only the unfinished work. A stage never leaves a half-written result behind.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config
from .draft import DRAFT_NAME, new_draft, save_draft, whisper_words
from .engine import DecodeOptions, WhisperEngine
from .errors import AudioError, ModelError
from .fsutil import atomic_write_json, fsync_dir
from .intake import safe_name
from .progress import NullReporter, Reporter
from .store import Job, JobState, JobStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
TRANSCRIPT_NAME = "transcript.json"


def job_dir(config: Config, job: Job) -> Path:
    return config.paths.work / "jobs" / job.id


def transcript_path(config: Config, job: Job) -> Path:
    return job_dir(config, job) / TRANSCRIPT_NAME


def draft_path(config: Config, job: Job) -> Path:
    return job_dir(config, job) / DRAFT_NAME


def sidecar_fields(config: Config, job: Job) -> dict[str, str]:
    """Letter fields the sender already gave (patient, author...) pre-fill the draft."""
    path = job_dir(config, job) / "sidecar.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    keys = ("author", "patient", "matter", "document_type", "recipient", "reference")
    return {key: data[key] for key in keys if data.get(key)}


def first_draft(config: Config, job: Job, transcript: dict[str, Any]) -> dict[str, Any]:
    """Post-process Whisper's words into the draft the secretary will review."""
    words = whisper_words(transcript)
    text = transcript["text"]
    return new_draft(
        job.id, transcript["language"], text, words, sidecar_fields(config, job), postprocessing={}
    )


def decode_options(config: Config, job: Job) -> DecodeOptions:
    """Options for one job: language from the sidecar or client, else detected."""
    language = job.language if job.language in ("fr", "en") else None
    return DecodeOptions(
        language=language,
        beam_size=config.transcription.beam_size,
        vad_filter=config.transcription.vad,
    )


def build_transcript(
    job: Job, engine: WhisperEngine, options: DecodeOptions, result: dict[str, Any]
) -> dict[str, Any]:
    """The stage-result file: everything needed to review, reproduce and compare."""
    duration = result["duration_s"] or 0.0
    return {
        "schema": 1,
        "job_id": job.id,
        "client": job.client,
        "created_at": datetime.now(UTC).isoformat(),
        "program_version": __version__,
        "audio": {
            "file": Path(job.audio_path or "").name,
            "sha256": job.content_hash,
            "duration_s": duration,
            "speech_s": result["speech_s"],
        },
        "language": result["language"],
        "language_probability": result["language_probability"],
        "model": engine.describe(),
        "options": {k: v for k, v in options.__dict__.items()},
        "timings": {
            "transcribe_s": result["transcribe_s"],
            "real_time_factor": round(result["transcribe_s"] / duration, 4) if duration else None,
        },
        "text": result["text"],
        "segments": result["segments"],
    }


def transcribe_job(config: Config, store: JobStore, engine: WhisperEngine, job: Job) -> Job:
    """Transcribe one claimed job; its transcript is written before the state moves on."""
    if job.attempts > MAX_ATTEMPTS:
        reason = f"transcription was interrupted {job.attempts - 1} times; retry by hand"
        return store.transition(job.id, JobState.FAILED, reason=reason)
    audio = config.paths.home / (job.audio_path or "")
    options = decode_options(config, job)
    try:
        result = engine.transcribe(audio, options)
    except AudioError as exc:
        return quarantine_job(config, store, job, str(exc))
    except ModelError:
        store.transition(job.id, JobState.RECEIVED, reason="model unavailable")
        raise
    except (OSError, RuntimeError, MemoryError) as exc:
        reason = f"transcription failed: {' '.join(str(exc).split())[:200]}"
        return store.transition(job.id, JobState.FAILED, reason=reason)
    if not result["segments"]:
        log.info("job %s: no speech found", job.id)
    transcript = build_transcript(job, engine, options, result)
    atomic_write_json(transcript_path(config, job), transcript)
    save_draft(draft_path(config, job), first_draft(config, job, transcript))
    return store.transition(
        job.id,
        JobState.REVIEW,
        expect=JobState.TRANSCRIBING,
        language=result["language"],
        claimed_by=None,
        claimed_at=None,
    )


def quarantine_job(config: Config, store: JobStore, job: Job, reason: str) -> Job:
    """Audio that looked fine at intake but cannot be decoded: out of the queue, kept."""
    source = config.paths.home / (job.audio_path or "")
    target = config.paths.quarantine / job.id / safe_name(job.source_name)
    target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    if source.exists():
        os.replace(source, target)
        fsync_dir(target.parent)
    return store.transition(
        job.id,
        JobState.QUARANTINED,
        reason=reason,
        audio_path=os.path.relpath(target, config.paths.home),
        claimed_by=None,
        claimed_at=None,
    )


def transcribe_pending(
    config: Config,
    store: JobStore,
    engine: WhisperEngine,
    *,
    reporter: Reporter | None = None,
    max_jobs: int | None = None,
    deadline: float | None = None,
) -> list[Job]:
    """Claim and transcribe jobs until none is left (or a limit is reached)."""
    reporter = reporter or NullReporter()
    done: list[Job] = []
    while max_jobs is None or len(done) < max_jobs:
        if deadline is not None and time.time() >= deadline:
            break
        job = store.claim_next()
        if job is None:
            break
        reporter.job(job, "transcribing")
        try:
            finished = transcribe_job(config, store, engine, job)
        except BaseException:
            release_claim(store, job.id)
            raise
        reporter.job(finished, str(finished.state))
        done.append(finished)
    return done


def release_claim(store: JobStore, job_id: str) -> None:
    """Put an interrupted job back in the queue (it will be transcribed again, once)."""
    try:
        job = store.get(job_id)
        if job.state == JobState.TRANSCRIBING:
            store.transition(
                job_id, JobState.RECEIVED, reason="interrupted", claimed_by=None, claimed_at=None
            )
    except Exception:
        log.exception("could not release claim on job %s", job_id)
