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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..asr.batching import BatchSettings, transcribe_batched
from ..asr.decode import SAMPLE_RATE, decode_file, read_ranges
from ..asr.engine import DecodeOptions, WhisperEngine
from ..asr.postprocess import (
    Biasing,
    Draft,
    learning_store,
    plan_biasing,
    postprocess,
    token_counter,
)
from ..config import ClientConfig, Config, Limits
from ..draft import DRAFT_NAME, new_draft, save_draft, whisper_words
from ..errors import AudioError, ModelError, StateError
from ..fsutil import atomic_write_json, fsync_dir, remove_files, write_failure
from ..progress import NullReporter, Reporter
from ..store import Job, JobState, JobStore
from ..vocabulary import LearningStore, TokenCounter, build_initial_prompt
from ..vocabulary.acoustic import AcousticCheck, Request
from ..vocabulary.retrieve import refocus, retrieve_terms
from .intake import safe_name

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# The second pass is kept unless Whisper was this much less sure of it (mean token
# log-probability); measured on bench/heldout, where one prompt derailed a decoding.
MAX_LOGPROB_DROP = 0.15
MAX_LENGTH_CHANGE = 0.25  # and the two passes' word counts agree within this fraction
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


@dataclass(frozen=True)
class Prepared:
    """What one dictation (or a group sharing client, author, language) is decoded with."""

    dictation: Dictation
    biasing: Biasing
    options: DecodeOptions
    learned: LearningStore


def prepare(config: Config, engine: WhisperEngine, dictation: Dictation) -> Prepared:
    """Vocabulary, prompt and decoding options, before any audio is touched."""
    learned = learning_store(config.paths.home)
    biasing = plan_biasing(
        dictation.client,
        dictation.author,
        dictation.language,
        learned,
        home=config.paths.home,
        count_tokens=lambda: _counter(engine),
    )
    prompt = biasing.prompt.text if biasing.prompt else None
    return Prepared(dictation, biasing, decode_options(config, dictation.language, prompt), learned)


Clips = Callable[[Sequence[tuple[float, float]]], "list[np.ndarray]"]


def finish(
    config: Config,
    engine: WhisperEngine,
    prepared: Prepared,
    result: dict[str, Any],
    clips: Clips | None = None,
) -> tuple[dict[str, Any], Draft]:
    """Whisper's result -> transcript record and post-processed draft.

    ``clips`` reads the audio of time ranges, for the acoustic check of lexicon
    corrections; without it corrections rest on spelling alone.
    """
    check_not_empty(engine, result)
    biasing, dictation = prepared.biasing, prepared.dictation
    if biasing.vocabulary is None and result["language"] in ("fr", "en"):
        detected = _biasing_for(config, engine, prepared, result["language"])
        biasing = Biasing(vocabulary=detected.vocabulary, prompt=None)  # decoded unprompted
    transcript = transcript_record(engine, prepared.options, result, biasing)
    draft = postprocess(
        whisper_words(transcript),
        result["language"],
        dictation.client,
        dictation.author,
        biasing=biasing,
        learned=prepared.learned,
        check=acoustic_check(config, engine, transcript, clips),
    )
    return transcript, draft


def acoustic_check(
    config: Config, engine: WhisperEngine, transcript: dict[str, Any], clips: Clips | None
) -> AcousticCheck | None:
    """Whisper as the judge of doubtful lexicon corrections, with the prompt it decoded with."""
    language = transcript["language"]
    if clips is None or not config.transcription.acoustic_check or language not in ("fr", "en"):
        return None
    options = transcript["options"]
    prompt = options.get("initial_prompt") or options.get("hotwords")

    def score(requests: Sequence[Request]) -> list[list[float]]:
        audio = clips([(start, end) for start, end, _ in requests])
        return [
            engine.score_texts(samples, texts, language=language, prompt=prompt)
            if len(samples)
            else [0.0] * len(texts)
            for samples, (_, _, texts) in zip(audio, requests, strict=True)
        ]

    return AcousticCheck(score)


def memory_clips(samples: np.ndarray) -> Clips:
    """Ranges of audio already decoded (16 kHz)."""
    return lambda ranges: [samples[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in ranges]


def file_clips(path: Path, limits: Limits) -> Clips:
    """Ranges read back from the file in one capped, streamed decoding: batches keep
    no file in memory whole."""
    return lambda ranges: read_ranges(path, limits, ranges)


def _counter(engine: WhisperEngine) -> TokenCounter | None:
    return token_counter(engine.model_ref.location) if engine.model_ref.local else None


def check_not_empty(engine: WhisperEngine, result: dict[str, Any]) -> None:
    """Some ctranslate2/driver pairs return empty text on H100s: never accept that silently."""
    if engine.device.device == "cuda" and result["speech_s"] > 2.0 and not result["text"]:
        raise ModelError(
            f"the GPU returned no text for {result['speech_s']:.0f} s of speech",
            hint="a known ctranslate2/driver problem: update the NVIDIA driver or set "
            "device = 'cpu'",
        )


def transcribe_file(
    config: Config, engine: WhisperEngine, audio: Path, dictation: Dictation
) -> tuple[dict[str, Any], Draft]:
    """Bias, decode and post-process one file; no job store involved (benchmarks use it)."""
    prepared = prepare(config, engine, dictation)
    samples = decode_file(audio, config.limits)  # once, for both passes
    result = engine.transcribe(samples, prepared.options)
    prepared, result = second_pass(
        config, engine, prepared, result, lambda options: engine.transcribe(samples, options)
    )
    return finish(config, engine, prepared, result, memory_clips(samples))


Decoder = Callable[[DecodeOptions], "dict[str, Any] | AudioError"]


def second_pass(
    config: Config,
    engine: WhisperEngine,
    prepared: Prepared,
    first: dict[str, Any],
    decode: Decoder,
) -> tuple[Prepared, dict[str, Any]]:
    """Decode again, the terms the first pass nearly heard leading the prompt.

    Skipped when turned off, when nothing biases Whisper (``bias = "none"``), or
    when no term came close. A dictation decoded without a language gets its
    vocabulary from the detected language here. Raises the AudioError ``decode``
    may return (a file that decoded once should decode twice; if not, it is bad).
    """
    settings = config.transcription
    language = first["language"]
    if not settings.second_pass or settings.bias == "none" or language not in ("fr", "en"):
        return prepared, first
    biasing = prepared.biasing
    if biasing.vocabulary is None:
        biasing = _biasing_for(config, engine, prepared, language)
    if biasing.vocabulary is None or not biasing.vocabulary.terms:
        return prepared, first
    words = [w for segment in first["segments"] for w in segment["words"]]
    retrieved = tuple(retrieve_terms(biasing.vocabulary, words, language))
    if not retrieved:
        return prepared, first
    plan = build_initial_prompt(
        refocus(biasing.vocabulary, retrieved), language, count_tokens=_counter(engine)
    )
    options = decode_options(config, language, plan.text)
    result = decode(options)
    if isinstance(result, AudioError):
        raise result
    first_record = {
        "prompt": prepared.options.initial_prompt or prepared.options.hotwords,
        "text": first["text"],
        "transcribe_s": first["transcribe_s"],
        "avg_logprob": mean_logprob(first),
        "second_avg_logprob": mean_logprob(result),
    }
    derailed = derailment(first, result)
    if derailed:
        first_record.update(kept="first", second_text=result["text"], second_dropped=derailed)
        kept = Biasing(biasing.vocabulary, prepared.biasing.prompt, first_record, retrieved)
        first["transcribe_s"] = round(result["transcribe_s"] + first["transcribe_s"], 3)
        return replace(prepared, biasing=kept), first
    first_record["kept"] = "second"
    result["transcribe_s"] = round(result["transcribe_s"] + first["transcribe_s"], 3)
    refined = Biasing(biasing.vocabulary, plan, first_pass=first_record, retrieved=retrieved)
    return replace(prepared, biasing=refined, options=options), result


def derailment(first: dict[str, Any], second: dict[str, Any]) -> str | None:
    """Why the second pass must not be trusted, or None.

    A prompt can tip Whisper into fluent nonsense (it is then much less sure of
    itself) or into repeating the dictation at its end (words piled up with no
    duration). Both passes heard the same audio, so their lengths must agree too.
    """
    if mean_logprob(second) < mean_logprob(first) - MAX_LOGPROB_DROP:
        return "much lower log-probability"
    words = [_words(first), _words(second)]
    counts = [len(w) for w in words]
    if abs(counts[1] - counts[0]) > max(3, MAX_LENGTH_CHANGE * counts[0]):
        return f"{counts[1]} words where the first pass had {counts[0]}"
    empty = [sum(w["end"] <= w["start"] for w in ws) for ws in words]
    if empty[1] > empty[0] + 2:
        return f"{empty[1]} words without duration (a repetition)"
    return None


def _words(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for segment in result["segments"] for w in segment.get("words") or ()]


def mean_logprob(result: dict[str, Any]) -> float:
    """Whisper's mean token log-probability over the file, segments weighted by length."""
    segments = result["segments"]
    total = sum(max(s["end"] - s["start"], 0.01) for s in segments)
    if not total:
        return 0.0
    weighted = sum(s["avg_logprob"] * max(s["end"] - s["start"], 0.01) for s in segments)
    return round(weighted / total, 4)


def _biasing_for(
    config: Config, engine: WhisperEngine, prepared: Prepared, language: str
) -> Biasing:
    dictation = prepared.dictation
    return plan_biasing(
        dictation.client,
        dictation.author,
        language,
        prepared.learned,
        home=config.paths.home,
        count_tokens=lambda: _counter(engine),
    )


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
        "hallucinations_dropped": result.get("hallucinations_dropped", []),
        "segments": result["segments"],
    }


def transcribe_job(config: Config, store: JobStore, engine: WhisperEngine, job: Job) -> Job:
    """Transcribe one claimed job; transcript and draft are written before the state moves."""
    refused = _refuse(config, store, job)
    if refused is not None:
        return refused
    audio = config.paths.home / (job.audio_path or "")
    try:
        transcript, draft = transcribe_file(config, engine, audio, dictation_of(config, job))
    except AudioError as exc:
        return quarantine_job(config, store, job, str(exc))
    except ModelError:
        store.transition(job.id, JobState.RECEIVED, reason="model unavailable")
        raise
    except (OSError, RuntimeError, MemoryError) as exc:
        return fail_job(store, job, exc)
    return save_results(config, store, job, transcript, draft)


def dictation_of(config: Config, job: Job) -> Dictation:
    client = config.client(job.client)
    assert client is not None  # checked by _refuse
    return Dictation(client, job.author, job.language)


def _refuse(config: Config, store: JobStore, job: Job) -> Job | None:
    """Jobs that must not be attempted again: crashed too often, or client removed."""
    if job.attempts > MAX_ATTEMPTS:
        reason = f"transcription was interrupted {job.attempts - 1} times; retry by hand"
        return store.transition(job.id, JobState.FAILED, reason=reason)
    if config.client(job.client) is None:
        reason = f"client {job.client!r} is no longer in the config"
        return store.transition(job.id, JobState.FAILED, reason=reason)
    return None


def fail_job(store: JobStore, job: Job, exc: BaseException) -> Job:
    """A resource fault (not bad input): ``failed`` with a one-line reason, retryable."""
    reason = f"transcription failed: {' '.join(str(exc).split())[:400]}"
    return store.transition(
        job.id, JobState.FAILED, reason=reason, claimed_by=None, claimed_at=None
    )


def save_results(
    config: Config, store: JobStore, job: Job, transcript: dict[str, Any], draft: Draft
) -> Job:
    """Write transcript.json and draft.json, then (only then) commit ``review``."""
    audio = config.paths.home / (job.audio_path or "")
    transcript.update(job_id=job.id, client=job.client)
    transcript["audio"].update(file=audio.name, sha256=job.content_hash)
    paths = (transcript_path(config, job), draft_path(config, job))
    try:
        atomic_write_json(paths[0], transcript)
        save_draft(
            paths[1],
            new_draft(
                job.id,
                transcript["language"],
                draft.text,
                draft.words,
                sidecar_fields(config, job),
                draft.record,
            ),
        )
    except OSError as exc:  # disk full, quota, read-only: a resource fault, retryable
        remove_files(*paths)  # a transcript without its draft is no result
        failure = write_failure(exc, "the transcript", paths[0].parent, retry=job.id)
        return fail_job(store, job, failure)
    return store.transition(
        job.id,
        JobState.REVIEW,
        expect=JobState.TRANSCRIBING,
        language=transcript["language"],
        claimed_by=None,
        claimed_at=None,
    )


def transcribe_group(
    config: Config,
    store: JobStore,
    engine: WhisperEngine,
    jobs: Sequence[Job],
    settings: BatchSettings,
) -> list[Job]:
    """Transcribe claimed jobs that share client, author and language in batched calls."""
    refusals = {job.id: _refuse(config, store, job) for job in jobs}
    refused = [r for r in refusals.values() if r is not None]
    jobs = [job for job in jobs if refusals[job.id] is None]
    if not jobs:
        return refused
    prepared = prepare(config, engine, dictation_of(config, jobs[0]))
    paths = [config.paths.home / (job.audio_path or "") for job in jobs]
    try:
        results = transcribe_batched(engine, paths, prepared.options, settings, config.limits)
    except ModelError:
        for job in jobs:
            store.transition(job.id, JobState.RECEIVED, reason="model unavailable")
        raise
    except (OSError, RuntimeError, MemoryError) as exc:
        return refused + [fail_job(store, job, exc) for job in jobs]
    return refused + [
        _save_one(config, store, engine, prepared, job, result, settings)
        for job, result in zip(jobs, results, strict=True)
    ]


def _save_one(
    config: Config,
    store: JobStore,
    engine: WhisperEngine,
    prepared: Prepared,
    job: Job,
    result: dict[str, Any] | AudioError,
    settings: BatchSettings,
) -> Job:
    if isinstance(result, AudioError):
        return quarantine_job(config, store, job, str(result))
    path = config.paths.home / (job.audio_path or "")
    try:
        prepared, result = second_pass(
            config,
            engine,
            prepared,
            result,
            lambda options: transcribe_batched(engine, [path], options, settings, config.limits)[0],
        )
        transcript, draft = finish(
            config, engine, prepared, result, file_clips(path, config.limits)
        )
    except AudioError as exc:
        return quarantine_job(config, store, job, str(exc))
    return save_results(config, store, job, transcript, draft)


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


def retry_job(config: Config, store: JobStore, job_id: str) -> Job:
    """A failed job goes back to the stage that failed: letter if approved, else transcription."""
    job = store.get(job_id)
    if job.state != JobState.FAILED:
        raise StateError(f"job {job_id} is {job.state}, only failed jobs are retried")
    approved = (job_dir(config, job) / "approved.json").is_file()
    target = JobState.APPROVED if approved else JobState.RECEIVED
    return store.transition(job_id, target, reason="retry", attempts=0)


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
