"""From audio files to transcripts and drafts, several dictations at once.

This is the whole of transcription without the job store: the watcher, the batch
and the benchmarks all call :func:`transcribe_audio`. For each dictation it

1. cuts the audio into speech windows (:mod:`.windows`), in the capped decoding
   child, piece by piece;
2. asks Whisper which language was spoken and decides what to transcribe in
   (:mod:`.language`), then builds that language's vocabulary prompt;
3. runs the decoding passes over every window of every dictation, batched
   (:mod:`.passes`);
4. joins each dictation's windows into one transcript, drops Whisper's tail
   hallucinations, marks what stayed unreliable, and post-processes the words into
   the draft (corrections, formatting), the acoustic check reusing the windows'
   encoder output.

What the secretary must know (another language, unreliable passages, no speech)
comes back as warnings with every result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import ClientConfig, Config
from ..errors import AudioError, ModelError
from ..vocabulary import LearningStore, TokenCounter
from ..vocabulary.acoustic import AcousticCheck, Request
from ..vocabulary.normalise import normalise_words
from .decoder import WindowText, detect_language, encode_windows, score_window
from .engine import WhisperEngine
from .language import LanguageChoice, choose_language
from .loops import drop_hallucinations
from .passes import FileDecoding, PassSettings, run_passes, with_words
from .postprocess import Biasing, Draft, learning_store, plan_biasing, postprocess, token_counter
from .windows import CHUNK_S, SAMPLE_RATE, VAD_PARAMETERS, Window, file_windows, memory_windows

JOIN_ECHO_WORDS = 3
SNAP_S = 1.0  # a scored range this close to its window's edge extends to it
PIECE_S = 120.0  # a long file is decoded 2 minutes at a time (bench/memory.py)


@dataclass(frozen=True)
class Dictation:
    """Who dictated, for whom, in which language they were expected to speak."""

    client: ClientConfig
    author: str | None
    language: str | None  # "fr", "en", or None for auto
    whose: str = "the client's"  # whose setting ``language`` is, for the warning


@dataclass
class Transcribed:
    """One dictation's transcript record, its draft, and what the secretary must know."""

    transcript: dict[str, Any]
    draft: Draft
    warnings: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _File:
    """A dictation in flight: its windows and everything decided about it."""

    source: Any
    dictation: Dictation
    windows: list[Window]
    duration_s: float
    choice: LanguageChoice | None = None
    biasing: Biasing | None = None
    decoding: FileDecoding | None = None


def pass_settings(config: Config, engine: WhisperEngine) -> PassSettings:
    """The passes' settings from the config and the device (bigger batches on a GPU)."""
    settings = config.transcription
    gpu = engine.device.device == "cuda"
    return PassSettings(
        beam_size=settings.beam_size,
        batch_size=16 if gpu else 4,
        first_prompted=settings.first_pass == "vocabulary",
        refocus=settings.second_pass and settings.bias != "none",
        guard=settings.guard if settings.bias != "none" else "off",
        wave_windows=96 if gpu else 24,
    )


def transcribe_audio(
    config: Config,
    engine: WhisperEngine,
    items: Sequence[tuple[Any, Dictation]],
) -> list[Transcribed | AudioError]:
    """Transcribe several dictations together (files, or 16 kHz samples in tests).

    A file the decoding child refuses comes back as its AudioError; the others are
    unaffected. A model that cannot be loaded raises ModelError.
    """
    started = time.perf_counter()
    model = engine.model
    results: list[Transcribed | AudioError | None] = [None] * len(items)
    files: list[_File] = []
    for position, (source, dictation) in enumerate(items):
        try:
            files.append(_cut(config, len(files), source, dictation))
        except AudioError as exc:
            results[position] = exc
    learned = learning_store(config.paths.home)
    for file in files:
        _decide(config, engine, file, learned)
    settings = pass_settings(config, engine)
    run_passes(model, [f.decoding for f in files if f.decoding], settings)
    elapsed = time.perf_counter() - started
    speech = sum(w.duration for f in files for w in f.windows) or 1.0
    finished = iter(
        _finish(config, engine, file, learned, elapsed * _speech(file) / speech) for file in files
    )
    return [result if result is not None else next(finished) for result in results]


def transcribe_one(
    config: Config, engine: WhisperEngine, source: Any, dictation: Dictation
) -> Transcribed:
    """One dictation (benchmarks, tests); raises its AudioError."""
    [result] = transcribe_audio(config, engine, [(source, dictation)])
    if isinstance(result, AudioError):
        raise result
    return result


def _cut(config: Config, number: int, source: Any, dictation: Dictation) -> _File:
    """Windows of one dictation, decoded by the capped child when it is a file."""
    vad = VAD_PARAMETERS if config.transcription.vad else None
    if not isinstance(source, Path):
        windows = memory_windows(number, source, vad)
        return _File(source, dictation, windows, source.size / SAMPLE_RATE)
    windows = []
    duration = 0.0
    for found in file_windows(number, source, config.limits, PIECE_S, vad):
        if isinstance(found, Window):
            windows.append(found)
        else:
            duration = found
    return _File(source, dictation, windows, duration)


def _decide(config: Config, engine: WhisperEngine, file: _File, learned: LearningStore) -> None:
    """Language first (one encoder run on the first window), then the prompt for it."""
    dictation = file.dictation
    probabilities: list[tuple[str, float]] = []
    if file.windows:
        encode_windows(engine.model, file.windows[:1], 1)
        probabilities = detect_language(engine.model, file.windows[0])
    file.choice = choose_language(
        dictation.language,
        probabilities,
        sum(w.duration for w in file.windows[:1]),
        whose=dictation.whose,
    )
    language = file.choice.language
    bias = config.transcription.bias != "none"
    file.biasing = plan_biasing(
        dictation.client,
        dictation.author,
        language if bias else None,
        learned,
        home=config.paths.home,
        count_tokens=lambda: _counter(engine),
    )
    file.decoding = FileDecoding(
        windows=file.windows,
        language=language,
        vocabulary=file.biasing.vocabulary,
        prompt=file.biasing.prompt,
        count_tokens=lambda: _counter(engine),
    )


def _counter(engine: WhisperEngine) -> TokenCounter | None:
    return token_counter(engine.model_ref.location) if engine.model_ref.local else None


def _speech(file: _File) -> float:
    return sum(w.duration for w in file.windows)


def _finish(
    config: Config, engine: WhisperEngine, file: _File, learned: LearningStore, seconds: float
) -> Transcribed:
    """Join the windows into a transcript, then post-process it into the draft."""
    assert file.decoding is not None and file.choice is not None and file.biasing is not None
    segments, unreliable = _segments(file.decoding)
    segments, echoes = drop_hallucinations(segments)
    for number, segment in enumerate(segments):
        segment["id"] = number
    text = "".join(s["text"] for s in segments).strip()
    _check_not_empty(engine, text, _speech(file))
    warnings = _warnings(file.choice, unreliable, text)
    transcript = _record(engine, file, segments, text, seconds, echoes, unreliable, warnings)
    words = [{**w, "segment": s["id"]} for s in segments for w in s["words"]]
    check = _acoustic_check(config, engine, file)
    draft = postprocess(
        words,
        file.choice.language,
        file.dictation.client,
        file.dictation.author,
        biasing=file.biasing,
        learned=learned,
        check=check,
    )
    return Transcribed(transcript, draft, warnings)


def _segments(decoding: FileDecoding) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The windows' chosen segments in order, words tagged with their window; and the
    unreliable passages (words marked ``unreliable`` with the reason)."""
    segments: list[dict[str, Any]] = []
    unreliable: list[dict[str, Any]] = []
    previous: list[dict[str, Any]] = []
    for window in decoding.windows:
        text = decoding.texts.get(window.index)
        if text is None:
            continue
        runaway = decoding.unreliable.get(window.index)
        if runaway is None:
            text = _without_join_echo(previous, text)
        previous = text.words
        flat = 0
        for segment in text.segments:
            words = []
            for word in segment["words"]:
                tagged = {**word, "window": window.index}
                if runaway is not None and runaway.start <= flat < runaway.end:
                    tagged["unreliable"] = runaway.kind
                words.append(tagged)
                flat += 1
            segments.append(
                {
                    "start": segment["start"],
                    "end": segment["end"],
                    "text": segment["text"],
                    "avg_logprob": round(text.avg_logprob, 4),
                    "no_speech_prob": round(text.no_speech_prob, 4),
                    "compression_ratio": round(text.compression_ratio, 3),
                    "words": words,
                }
            )
        if runaway is not None:
            marked = [w for s in segments for w in s["words"] if w.get("unreliable")]
            unreliable.append(_passage(runaway, marked, window))
    return segments, unreliable


def _without_join_echo(previous: list[dict[str, Any]], text: WindowText) -> WindowText:
    """A window opening with the last words of the window before it (three or more)
    repeats them: the copy goes, so no sentence is written twice across a join."""
    before = [" ".join(normalise_words(str(w["word"]))) for w in previous]
    words = text.words
    after = [" ".join(normalise_words(str(w["word"]))) for w in words]
    for size in range(min(len(before), len(after)), JOIN_ECHO_WORDS - 1, -1):
        if before[-size:] == after[:size]:
            return with_words(text, words[size:])
    return text


def _passage(runaway: Any, words: list[dict[str, Any]], window: Window) -> dict[str, Any]:
    mine = [w for w in words if w.get("window") == window.index]
    return {
        "window": window.index,
        "kind": runaway.kind,
        "text": runaway.text,
        "start": mine[0]["start"] if mine else round(window.start_s, 3),
        "end": mine[-1]["end"] if mine else round(window.end_s, 3),
    }


def _check_not_empty(engine: WhisperEngine, text: str, speech_s: float) -> None:
    """Some ctranslate2/driver pairs return empty text on H100s: never accept that silently."""
    if engine.device.device == "cuda" and speech_s > 2.0 and not text:
        raise ModelError(
            f"the GPU returned no text for {speech_s:.0f} s of speech",
            hint="a known ctranslate2/driver problem: update the NVIDIA driver or set "
            "device = 'cpu'",
        )


def _warnings(
    choice: LanguageChoice, unreliable: list[dict[str, Any]], text: str
) -> list[dict[str, str]]:
    """What ``status``, ``show`` and the review loop tell the secretary."""
    warnings = []
    if choice.warning:
        warnings.append({"code": "language", "text": choice.warning})
    if unreliable:
        warnings.append(
            {
                "code": "unreliable",
                "text": f"{len(unreliable)} passage(s) where Whisper repeated itself or its "
                "prompt: listen and correct before approving",
            }
        )
    if not text:
        warnings.append({"code": "empty", "text": "no speech was recognised in this dictation"})
    return warnings


def _record(
    engine: WhisperEngine,
    file: _File,
    segments: list[dict[str, Any]],
    text: str,
    seconds: float,
    echoes: list[str],
    unreliable: list[dict[str, Any]],
    warnings: list[dict[str, str]],
) -> dict[str, Any]:
    """The stage-result file: everything needed to review, reproduce and compare."""
    decoding, choice = file.decoding, file.choice
    assert decoding is not None and choice is not None and file.biasing is not None
    settings = engine.config
    return {
        "schema": 2,
        "created_at": datetime.now(UTC).isoformat(),
        "program_version": __version__,
        "audio": {"duration_s": round(file.duration_s, 3), "speech_s": round(_speech(file), 3)},
        "language": choice.language,
        "language_probability": round(choice.probability, 4),
        "language_detection": choice.to_json(),
        "model": engine.describe(),
        "options": {
            "beam_size": settings.beam_size,
            "vad_filter": settings.vad,
            "vad_parameters": VAD_PARAMETERS if settings.vad else None,
            "word_timestamps": True,
            "bias": settings.bias,
            "initial_prompt": file.biasing.prompt.text if file.biasing.prompt else None,
            "first_pass": settings.first_pass,
            "second_pass": settings.second_pass,
            "guard": settings.guard,
        },
        "biasing": {
            **file.biasing.record(),
            "refocused_prompt": decoding.refocused.to_json() if decoding.refocused else None,
            "retrieved": [r.to_json() for r in decoding.retrieved],
        },
        "windows": [
            decoding.records[w.index] for w in decoding.windows if w.index in decoding.records
        ],
        "timings": {
            "transcribe_s": round(seconds, 3),
            "real_time_factor": round(seconds / file.duration_s, 4) if file.duration_s else None,
        },
        "text": text,
        "hallucinations_dropped": echoes,
        "unreliable": unreliable,
        "warnings": warnings,
        "segments": segments,
    }


def _acoustic_check(config: Config, engine: WhisperEngine, file: _File) -> AcousticCheck | None:
    """Whisper as the judge of doubtful lexicon corrections, on the windows' audio."""
    decoding = file.decoding
    assert decoding is not None
    if not config.transcription.acoustic_check or decoding.language not in ("fr", "en"):
        return None
    prompts = {index: text.prompt for index, text in decoding.texts.items()}
    return acoustic_check(engine, file.windows, decoding.language, prompts)


def acoustic_check(
    engine: WhisperEngine,
    windows: Sequence[Window],
    language: str,
    prompts: dict[int, str | None],
) -> AcousticCheck:
    """A check that scores texts on the dictation's windows, each with the prompt it was
    decoded with: a whole window's words reuse its encoder output; other ranges are
    cut from the windows' audio."""
    by_index = {w.index: w for w in windows}

    def score(requests: Sequence[Request]) -> list[list[float]]:
        answers = []
        for start, end, texts, key in requests:
            window = by_index.get(key) if key is not None else None
            if window is None:
                window = _clip(windows, start, end)
                key = _window_at(windows, start)
            prompt = prompts.get(key) if key is not None else None
            answers.append(
                score_window(engine.model, window, texts, language, prompt)
                if window.audio.size
                else [0.0] * len(texts)
            )
        return answers

    whole = frozenset(w.index for w in windows if w.duration <= CHUNK_S)
    return AcousticCheck(score, whole)


def _window_at(windows: Sequence[Window], start: float) -> int | None:
    for window in windows:
        if window.start_s - 1.0 <= start <= window.end_s:
            return window.index
    return None


def _clip(windows: Sequence[Window], start: float, end: float) -> Window:
    """The speech between two file times, from the windows' audio, as a window of its own.

    A range that stops short of a window's edge by less than SNAP_S takes the window
    up to its edge: Whisper scores a text more steadily on audio that does not stop
    mid-breath, and the pause there holds no other words."""
    import numpy as np

    pieces, speech = [], []
    for window in windows:
        if window.end_s < start or window.start_s > end:
            continue
        if 0 < start - window.start_s < SNAP_S:
            start = window.start_s
        if 0 < window.end_s - end < SNAP_S:
            end = window.end_s
        lo = int(window.to_window_time(max(start, window.start_s)) * SAMPLE_RATE)
        hi = int(window.to_window_time(min(end, window.end_s)) * SAMPLE_RATE)
        pieces.append(window.audio[lo:hi])
        speech.append({"start": int(start * SAMPLE_RATE), "end": int(end * SAMPLE_RATE)})
    audio = np.concatenate(pieces)[: 30 * SAMPLE_RATE] if pieces else np.zeros(0, np.float32)
    return Window(file=-1, index=-1, audio=audio, speech=speech[:1] or [{"start": 0, "end": 0}])
