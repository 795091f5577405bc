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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .config import ClientConfig, Config
from .draft import DRAFT_NAME, new_draft, save_draft, whisper_words
from .engine import DecodeOptions, WhisperEngine
from .errors import AudioError, ModelError
from .fsutil import atomic_write_json, fsync_dir
from .intake import safe_name
from .postprocess import Biasing, Draft, learning_store, plan_biasing, postprocess, token_counter
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


@dataclass(frozen=True)
class Dictation:
    """Who dictated what, for whom: everything that tunes one transcription."""

    client: ClientConfig
    author: str | None
    language: str | None  # "fr", "en", or None to detect


def decode_options(config: Config, language: str | None, prompt: str | None) -> DecodeOptions:
    """``bias`` decides how the vocabulary prompt reaches Whisper (measured in bench/asr.py)."""
    bias = config.transcription.bias
    return DecodeOptions(
        language=language if language in ("fr", "en") else None,
        beam_size=config.transcription.beam_size,
        vad_filter=config.transcription.vad,
        initial_prompt=prompt if bias == "initial_prompt" else None,
        hotwords=prompt if bias == "hotwords" else None,
    )


def transcribe_file(
    config: Config, engine: WhisperEngine, audio: Path, dictation: Dictation
) -> tuple[dict[str, Any], Draft]:
    """Bias, decode and post-process one file; no job store involved (benchmarks use it)."""
    learned = learning_store(config.paths.home)
    counter = token_counter(engine.model_ref.location) if engine.model_ref.local else None
    biasing = plan_biasing(
        dictation.client,
        dictation.author,
        dictation.language,
        learned,
        home=config.paths.home,
        count_tokens=counter,
    )
    options = decode_options(
        config, dictation.language, biasing.prompt.text if biasing.prompt else None
    )
    result = engine.transcribe(audio, options)
    if biasing.vocabulary is None and result["language"] in ("fr", "en"):
        biasing = plan_biasing(
            dictation.client,
            dictation.author,
            result["language"],
            learned,
            home=config.paths.home,
            count_tokens=counter,
        )
        biasing = Biasing(vocabulary=biasing.vocabulary, prompt=None)  # decoded unprompted
    transcript = transcript_record(engine, options, result, biasing)
    draft = postprocess(
        whisper_words(transcript),
        result["language"],
        dictation.client,
        dictation.author,
        biasing=biasing,
        learned=learned,
    )
    return transcript, draft


def transcript_record(
    engine: WhisperEngine, options: DecodeOptions, result: dict[str, Any], biasing: Biasing
) -> dict[str, Any]:
    """The stage-result file: everything needed to review, reproduce and compare."""
    duration = result["duration_s"] or 0.0
    return {
        "schema": 1,
        "created_at": datetime.now(UTC).isoformat(),
        "program_version": __version__,
        "audio": {"duration_s": duration, "speech_s": result["speech_s"]},
        "language": result["language"],
        "language_probability": result["language_probability"],
        "model": engine.describe(),
        "options": asdict(options),
        "biasing": biasing.record(),
        "timings": {
            "transcribe_s": result["transcribe_s"],
            "real_time_factor": round(result["transcribe_s"] / duration, 4) if duration else None,
        },
        "text": result["text"],
        "segments": result["segments"],
    }


def transcribe_job(config: Config, store: JobStore, engine: WhisperEngine, job: Job) -> Job:
    """Transcribe one claimed job; transcript and draft are written before the state moves."""
    if job.attempts > MAX_ATTEMPTS:
        reason = f"transcription was interrupted {job.attempts - 1} times; retry by hand"
        return store.transition(job.id, JobState.FAILED, reason=reason)
    client = config.client(job.client)
    if client is None:
        return store.transition(
            job.id, JobState.FAILED, reason=f"client {job.client!r} is no longer in the config"
        )
    audio = config.paths.home / (job.audio_path or "")
    try:
        transcript, draft = transcribe_file(
            config, engine, audio, Dictation(client, job.author, job.language)
        )
    except AudioError as exc:
        return quarantine_job(config, store, job, str(exc))
    except ModelError:
        store.transition(job.id, JobState.RECEIVED, reason="model unavailable")
        raise
    except (OSError, RuntimeError, MemoryError) as exc:
        reason = f"transcription failed: {' '.join(str(exc).split())[:200]}"
        return store.transition(job.id, JobState.FAILED, reason=reason)
    transcript.update(job_id=job.id, client=job.client)
    transcript["audio"].update(file=audio.name, sha256=job.content_hash)
    atomic_write_json(transcript_path(config, job), transcript)
    fields = sidecar_fields(config, job)
    save_draft(
        draft_path(config, job),
        new_draft(job.id, transcript["language"], draft.text, draft.words, fields, draft.record),
    )
    return store.transition(
        job.id,
        JobState.REVIEW,
        expect=JobState.TRANSCRIBING,
        language=transcript["language"],
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
