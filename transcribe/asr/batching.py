"""Batched transcription across files, with bounded memory.

Plain faster-whisper decodes one 30-second window after another. Its
``BatchedInferencePipeline`` decodes several windows at once, which roughly doubles
throughput on a CPU and does much more on a GPU, but only within one file: a pile
of 20-second dictations would gain nothing. So we build the windows ourselves:

1. each file is decoded in pieces of ``piece_s`` seconds (a 2-hour dictation never
   sits in memory whole), and voice activity detection cuts each piece into speech
   segments; a segment that touches the end of a piece is carried into the next one,
   so no word is cut in two;
2. speech segments are packed into chunks of at most 30 s, never mixing two files;
3. chunks from several files are sent in one batched call (``clip_timestamps``),
   ``wave_s`` seconds of speech at a time;
4. the segments that come back are split by chunk and their times mapped back to
   each file's own clock (the same mapping faster-whisper uses for VAD).

Files in one call share the language and the prompt, so callers group jobs by client,
author and language.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Limits
from ..errors import AudioError
from .decode import decode_stream
from .engine import DecodeOptions, WhisperEngine, drop_hallucinations, segment_record

SAMPLE_RATE = 16000
CHUNK_S = 30.0
CARRY_MARGIN_S = 0.5


@dataclass(frozen=True)
class BatchSettings:
    """How much to batch and how much audio to hold at once.

    The defaults suit a CPU: on 2 cores batch 4 is as fast as 8 (measured) and the
    encoder's attention for 8 windows at once costs about 400 MB more; VAD over a
    2-minute piece stays small where a 10-minute one took ~300 MB (bench/memory.py).
    """

    batch_size: int = 4
    piece_s: float = 120.0
    wave_s: float = 300.0


@dataclass
class Chunk:
    """At most 30 s of one file's speech, with the segments it was cut from."""

    item: int
    audio: np.ndarray
    speech: list[dict[str, int]]  # sample positions in the file

    @functools.cached_property
    def _clock(self) -> Any:
        from faster_whisper.vad import SpeechTimestampsMap

        return SpeechTimestampsMap(self.speech, SAMPLE_RATE)

    def to_file_time(self, t: float) -> float:
        """Map a time inside this chunk's speech-only audio to the file's clock."""
        return float(self._clock.get_original_time(t))


@dataclass
class FileResult:
    duration_s: float = 0.0
    speech_s: float = 0.0
    seconds: float = 0.0
    language: str | None = None
    language_probability: float = 0.0
    segments: list[dict[str, Any]] = field(default_factory=list)
    error: AudioError | None = None


def decode_pieces(path: Path, piece_s: float, limits: Limits) -> Iterator[np.ndarray]:
    """Mono 16 kHz float32 audio, ``piece_s`` seconds at a time, decoded by the capped
    child process (the samples plain faster-whisper would decode)."""
    return decode_stream(path, limits, piece_s)


def _vad_options(options: DecodeOptions) -> Any:
    from faster_whisper.vad import VadOptions

    return VadOptions(**{**options.vad_parameters, "max_speech_duration_s": CHUNK_S})


def _pack(item: int, audio: np.ndarray, base: int, speech: list[dict[str, int]]) -> list[Chunk]:
    """Group speech segments (positions in ``audio``) into chunks of <= 30 s."""
    chunks: list[Chunk] = []
    current: list[dict[str, int]] = []
    length = 0
    for seg in speech:
        size = seg["end"] - seg["start"]
        if current and length + size > CHUNK_S * SAMPLE_RATE:
            chunks.append(_chunk(item, audio, base, current))
            current, length = [], 0
        current.append(seg)
        length += size
    if current:
        chunks.append(_chunk(item, audio, base, current))
    return chunks


def _chunk(item: int, audio: np.ndarray, base: int, speech: list[dict[str, int]]) -> Chunk:
    samples = np.concatenate([audio[s["start"] : s["end"]] for s in speech])
    absolute = [{"start": s["start"] + base, "end": s["end"] + base} for s in speech]
    return Chunk(item=item, audio=samples, speech=absolute)


def file_chunks(
    item: int,
    path: Path,
    options: DecodeOptions,
    settings: BatchSettings,
    result: FileResult,
    limits: Limits,
) -> Iterator[Chunk]:
    """Speech chunks of one file, piece by piece, carrying a cut segment forward."""
    from faster_whisper.vad import get_speech_timestamps

    vad = _vad_options(options)
    carry = np.zeros(0, dtype=np.float32)
    base = 0  # file position of carry[0]
    pieces = decode_pieces(path, settings.piece_s, limits)
    piece = next(pieces, None)
    while piece is not None:
        following = next(pieces, None)
        result.duration_s += piece.size / SAMPLE_RATE
        audio = np.concatenate([carry, piece]) if carry.size else piece
        speech = get_speech_timestamps(audio, vad)
        cut = audio.size
        if (
            following is not None
            and speech
            and speech[-1]["end"] >= audio.size - CARRY_MARGIN_S * SAMPLE_RATE
        ):
            cut = speech.pop()["start"]
        result.speech_s += sum(s["end"] - s["start"] for s in speech) / SAMPLE_RATE
        yield from _pack(item, audio, base, speech)
        carry, base = audio[cut:], base + cut
        piece = following


def _transcribe_wave(
    engine: WhisperEngine,
    chunks: Sequence[Chunk],
    options: DecodeOptions,
    settings: BatchSettings,
    results: list[FileResult],
) -> None:
    """One batched call over ``chunks``; segments go back to their files' results."""
    from faster_whisper import BatchedInferencePipeline

    started = time.perf_counter()
    starts = np.cumsum([0] + [c.audio.size for c in chunks]) / SAMPLE_RATE
    clips = [{"start": float(a), "end": float(b)} for a, b in itertools.pairwise(starts)]
    kwargs = {
        k: v
        for k, v in asdict(options).items()
        if k not in ("vad_filter", "vad_parameters", "condition_on_previous_text")
    }
    pipeline = BatchedInferencePipeline(model=engine.model)
    segments, info = pipeline.transcribe(
        np.concatenate([c.audio for c in chunks]),
        clip_timestamps=clips,
        batch_size=settings.batch_size,
        **kwargs,
    )
    for segment in segments:
        index = max(0, bisect.bisect_right(starts[:-1], (segment.start + segment.end) / 2) - 1)
        _place(segment, chunks[index], float(starts[index]), results[chunks[index].item])
    elapsed = time.perf_counter() - started
    speech = sum(c.audio.size for c in chunks) or 1
    for chunk in chunks:
        result = results[chunk.item]
        result.seconds += elapsed * chunk.audio.size / speech
        result.language, result.language_probability = info.language, info.language_probability


def _place(segment: Any, chunk: Chunk, clip_start: float, result: FileResult) -> None:
    """Re-time a segment from the batch's clock to its file's clock."""
    for word in segment.words or []:
        word.start = chunk.to_file_time(max(0.0, word.start - clip_start))
        word.end = chunk.to_file_time(max(0.0, word.end - clip_start))
    if segment.words:
        segment.start, segment.end = segment.words[0].start, segment.words[-1].end
    else:
        segment.start = chunk.to_file_time(max(0.0, segment.start - clip_start))
        segment.end = chunk.to_file_time(max(0.0, segment.end - clip_start))
    record = segment_record(segment)
    record["id"] = len(result.segments)
    result.segments.append(record)


def transcribe_batched(
    engine: WhisperEngine,
    paths: Sequence[Path],
    options: DecodeOptions,
    settings: BatchSettings,
    limits: Limits | None = None,
) -> list[dict[str, Any] | AudioError]:
    """Transcribe files together: per file, a result shaped like ``engine.transcribe``,
    or the :class:`AudioError` that file raised (the others are unaffected). Each file
    is decoded by a child process under ``limits`` (the defaults if None)."""
    if options.language is None and len(paths) > 1:
        raise ValueError("files batched together must share a known language")
    limits = limits or Limits()
    results = [FileResult() for _ in paths]
    wave: list[Chunk] = []
    for item, path in enumerate(paths):
        try:
            for chunk in file_chunks(item, path, options, settings, results[item], limits):
                wave.append(chunk)
                if sum(c.audio.size for c in wave) >= settings.wave_s * SAMPLE_RATE:
                    _transcribe_wave(engine, wave, options, settings, results)
                    wave = []
        except AudioError as exc:
            results[item].error = exc
    if wave:
        _transcribe_wave(engine, wave, options, settings, results)
    return [r.error if r.error else _as_engine_result(r, options) for r in results]


def _as_engine_result(result: FileResult, options: DecodeOptions) -> dict[str, Any]:
    result.segments.sort(key=lambda s: s["start"])
    result.segments, echoes = drop_hallucinations(result.segments)
    for index, segment in enumerate(result.segments):
        segment["id"] = index
    return {
        "language": result.language or options.language,
        "language_probability": round(float(result.language_probability), 4),
        "duration_s": round(result.duration_s, 3),
        "speech_s": round(result.speech_s, 3),
        "segments": result.segments,
        "text": "".join(s["text"] for s in result.segments).strip(),
        "transcribe_s": round(result.seconds, 3),
        "hallucinations_dropped": echoes,
    }
