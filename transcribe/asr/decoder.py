"""Decode many speech windows at once, the way faster-whisper decodes one file.

faster-whisper's sequential decoding writes timestamped segments 30 s at a time and,
when a window's last segment is unfinished, resumes from the last timestamp with the
text so far as prompt. Its ``BatchedInferencePipeline`` decodes many windows at once
but without timestamps: a window whose decoding stops early (a long vocabulary
prompt makes that likely) silently loses the rest of its speech. Measured on the
shared dictations, that cost more words than batching saved.

So this module runs the sequential algorithm for many windows together. Each round
decodes every unfinished window, in batches of windows whose prompts have the same
length (CTranslate2 needs the start-of-transcript token at one position), splits the
result at timestamps, aligns words, and moves each window's position on; a window
that is not finished resumes in the next round. Features and the encoder output of a
window's first 30 s are computed once and reused by every pass.

The prompt, language, beam and temperature are the caller's (:class:`Request`), so
the passes in :mod:`transcribe.asr.passes` decide what to decode how; this module
only knows how to decode.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .loops import compression_ratio
from .windows import Window

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
MAX_INITIAL_TIMESTAMP_INDEX = 50  # 1 s, faster-whisper's default
FINISHED_FRAMES = 50  # less than half a second of speech left: the window is done
FRAMES_PER_S = 100
TOKENS_PER_S = 16  # fast French with timestamps writes 8; beam search needs room beyond
MAX_ROUNDS = 6  # a 40-s window takes two or three


@dataclass(frozen=True)
class Request:
    """How to decode: language, prompt (plain text), beam or sampling temperature."""

    language: str
    prompt: str | None = None
    beam_size: int = 5
    temperature: float = 0.0
    best_of: int = 5
    batch_size: int = 4


@dataclass
class WindowText:
    """One window as one decoding wrote it: words and segments on the file's clock."""

    window: Window
    prompt: str | None
    temperature: float
    segments: list[dict[str, Any]] = field(default_factory=list)
    logprob_sum: float = 0.0
    token_count: int = 0
    no_speech_prob: float = 0.0

    @property
    def words(self) -> list[dict[str, Any]]:
        return [w for s in self.segments for w in s["words"]]

    @property
    def text(self) -> str:
        return "".join(s["text"] for s in self.segments)

    @property
    def avg_logprob(self) -> float:
        """Mean token log-probability under this decoding's own prompt."""
        return self.logprob_sum / self.token_count if self.token_count else 0.0

    @property
    def compression_ratio(self) -> float:
        return compression_ratio(self.text.strip())


@dataclass(eq=False)
class _Job:
    window: Window
    result: WindowText
    prompt_tokens: list[int]
    seek: int = 0  # mel frames into the window
    tokens: list[int] = field(default_factory=list)
    done: bool = False
    reach_s: float = 0.0  # complete once this far into the window (at most its speech)


def encode_windows(model: Any, windows: Sequence[Window], batch_size: int) -> float:
    """Encoder output of each window's first 30 s, cached on the window; seconds spent."""
    started = time.perf_counter()
    todo = [w for w in windows if w.encoded is None]
    for i in range(0, len(todo), batch_size):
        part = todo[i : i + batch_size]
        encoded = _encode(model, [_frames(model, w, 0)[0] for w in part])
        for window, output in zip(part, encoded, strict=True):
            window.encoded = output[None]
    return time.perf_counter() - started


def detect_language(model: Any, window: Window) -> list[tuple[str, float]]:
    """Whisper's language probabilities for a window (its first 30 s), best first."""
    import ctranslate2

    encode_windows(model, [window], 1)
    assert window.encoded is not None
    found = model.model.detect_language(ctranslate2.StorageView.from_array(window.encoded))[0]
    return [(token[2:-2], float(prob)) for token, prob in found]


def decode_windows(
    model: Any,
    windows: Sequence[Window],
    request: Request,
    prompts: Sequence[str | None] | None = None,
    until_s: Sequence[float | None] | None = None,
) -> list[WindowText]:
    """Decode each window completely (resuming where a decoding stopped early), with
    ``request.prompt``, or with each window's own prompt from ``prompts`` (windows of
    several files, each with its file's prompt: those of one length share a batch).

    ``until_s``: how far into each window a decoding must reach to be complete (a
    second pass need not go past the words the first one found: resuming costs a
    whole encoder run for a few tenths of a second of audio)."""
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language=request.language)
    own = list(prompts) if prompts is not None else [request.prompt] * len(windows)
    encoded = {p: tokenizer.encode(" " + p.strip()) for p in set(own) if p}
    ends = list(until_s) if until_s is not None else [None] * len(windows)
    jobs = [
        _Job(
            w,
            WindowText(w, p, request.temperature),
            encoded[p] if p else [],
            reach_s=w.voiced_s if end is None else min(end, w.voiced_s),
        )
        for w, p, end in zip(windows, own, ends, strict=True)
    ]
    for _ in range(MAX_ROUNDS):
        pending = [job for job in jobs if not job.done]
        if not pending:
            break
        for batch in _batches(model, pending, request.batch_size):
            _decode_batch(model, tokenizer, batch, request)
    return [job.result for job in jobs]


def _batches(model: Any, jobs: Sequence[_Job], size: int) -> list[list[tuple[_Job, list[int]]]]:
    """Jobs grouped by prompt length (the decoder's constraint), ``size`` at a time."""
    half = model.max_length // 2 - 1  # faster-whisper keeps the last 223 prompt tokens
    groups: dict[int, list[tuple[_Job, list[int]]]] = {}
    for job in jobs:
        previous = (job.prompt_tokens + job.tokens)[-half:]
        groups.setdefault(len(previous), []).append((job, previous))
    return [
        members[i : i + size] for members in groups.values() for i in range(0, len(members), size)
    ]


def _decode_batch(
    model: Any, tokenizer: Any, batch: list[tuple[_Job, list[int]]], request: Request
) -> None:
    import ctranslate2
    from faster_whisper.transcribe import get_suppressed_tokens

    framed = [_frames(model, job.window, job.seek) for job, _ in batch]
    encoded = _encoder_output(model, batch, framed)
    prompts = [
        ([tokenizer.sot_prev, *previous] if previous else []) + list(tokenizer.sot_sequence)
        for _, previous in batch
    ]
    sampling = (
        {"beam_size": request.beam_size}
        if request.temperature == 0
        else {
            "beam_size": 1,
            "num_hypotheses": request.best_of,
            "sampling_topk": 0,
            "sampling_temperature": request.temperature,
        }
    )
    results = model.model.generate(
        ctranslate2.StorageView.from_array(encoded),
        prompts,
        max_length=_max_length(model, prompts, framed),
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
        **sampling,
    )
    pieces = [
        _split(model, tokenizer, job, result, size)
        for (job, _), result, (_, size) in zip(batch, results, framed, strict=True)
    ]
    _align(model, tokenizer, encoded, pieces, [size for _, size in framed])
    for (job, _), (segments, seek, single), (_, size) in zip(batch, pieces, framed, strict=True):
        _advance(job, segments, seek, single, size, model)


def _max_length(
    model: Any, prompts: Sequence[Sequence[int]], framed: Sequence[tuple[np.ndarray, int]]
) -> int:
    """Room for what the longest audio of the batch can hold, not the model's whole
    448 tokens: a decoding that loops stops there instead of repeating itself to the
    end (a window cut short resumes from its last timestamp, so nothing is lost).
    The room is twice what fast speech needs: a tighter cap (8 tokens a second)
    ended beams early and changed the words of a 15-s French sentence."""
    seconds = max(size for _, size in framed) / FRAMES_PER_S
    room = int(TOKENS_PER_S * seconds) + 16
    return min(model.max_length, max(len(p) for p in prompts) + room)


def _frames(model: Any, window: Window, seek: int) -> tuple[np.ndarray, int]:
    """The window's features from ``seek``, padded to 30 s, and how many frames are real."""
    from faster_whisper.audio import pad_or_trim

    features = window.features(model)
    size = min(model.feature_extractor.nb_max_frames, features.shape[-1] - seek)
    return pad_or_trim(features[:, seek : seek + size]), size


def _encode(model: Any, features: Sequence[np.ndarray]) -> np.ndarray:
    import ctranslate2

    batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(features)))
    return np.asarray(model.model.encode(batch, to_cpu=True))


def _encoder_output(
    model: Any, batch: list[tuple[_Job, list[int]]], framed: list[tuple[np.ndarray, int]]
) -> np.ndarray:
    """The cached encoder output where a window starts from its beginning, else fresh."""
    if all(job.seek == 0 and job.window.encoded is not None for job, _ in batch):
        return np.ascontiguousarray(np.concatenate([job.window.encoded for job, _ in batch]))
    encoded = _encode(model, [features for features, _ in framed])
    for (job, _), output in zip(batch, encoded, strict=True):
        if job.seek == 0:
            job.window.encoded = output[None]
    return np.ascontiguousarray(encoded)


def _split(
    model: Any, tokenizer: Any, job: _Job, result: Any, size: int
) -> tuple[list[dict[str, Any]], int, bool]:
    """Segments of one decoding at its timestamps (faster-whisper's own splitter)."""
    tokens = result.sequences_ids[0]
    job.result.logprob_sum += result.scores[0] * len(tokens)
    job.result.token_count += len(tokens) + 1
    job.result.no_speech_prob = max(job.result.no_speech_prob, float(result.no_speech_prob))
    per_frame = model.feature_extractor.time_per_frame
    segments, seek, single = model._split_segments_by_timestamps(
        tokenizer, tokens, job.seek * per_frame, size, size * per_frame, job.seek
    )
    for segment in segments:
        segment["text"] = tokenizer.decode([t for t in segment["tokens"] if t < tokenizer.eot])
    return segments, seek, single


def _align(
    model: Any,
    tokenizer: Any,
    encoded: np.ndarray,
    pieces: list[tuple[list[dict[str, Any]], int, bool]],
    sizes: list[int],
) -> None:
    """Word timings for the batch's segments (one alignment call)."""
    import ctranslate2

    present = [k for k, (segments, _, _) in enumerate(pieces) if segments]
    if not present:
        return
    model.add_word_timestamps(
        [pieces[k][0] for k in present],
        tokenizer,
        ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[present])),
        [sizes[k] for k in present],
        PREPEND_PUNCTUATIONS,
        APPEND_PUNCTUATIONS,
        0.0,
    )


def _advance(
    job: _Job, segments: list[dict[str, Any]], seek: int, single: bool, size: int, model: Any
) -> None:
    """Keep the round's segments (file clock) and move the window's position on."""
    frames_per_second = model.frames_per_second
    if not single and segments and segments[-1].get("words"):
        last_end = segments[-1]["words"][-1]["end"]
        if last_end > job.seek / frames_per_second:
            seek = round(last_end * frames_per_second)  # as faster-whisper does
    if not segments or seek <= job.seek:
        seek = job.seek + size
    for segment in segments:
        job.tokens += segment["tokens"]  # timestamps included, as faster-whisper prompts
        job.result.segments.append(_on_file_clock(job.window, segment))
    job.seek = seek
    frames = min(job.window.features(model).shape[-1], job.reach_s * FRAMES_PER_S)
    job.done = seek >= frames - FINISHED_FRAMES


def _on_file_clock(window: Window, segment: dict[str, Any]) -> dict[str, Any]:
    words = [
        {
            "word": w["word"],
            "start": round(window.to_file_time(w["start"]), 3),
            "end": round(window.to_file_time(w["end"]), 3),
            "probability": round(float(w["probability"]), 4),
        }
        for w in segment.get("words") or ()
        if w["word"]
    ]
    start = words[0]["start"] if words else round(window.to_file_time(segment["start"]), 3)
    end = words[-1]["end"] if words else round(window.to_file_time(segment["end"]), 3)
    return {"start": start, "end": end, "text": segment["text"], "words": words}


def score_window(
    model: Any, window: Window, texts: Sequence[str], language: str, prompt: str | None
) -> list[float]:
    """The log-probability Whisper gives each text as the transcription of the window.

    Teacher-forced (the text is given, not searched for), with the prompt the window
    was decoded with: this is how lexicon correction asks the model whether it would
    rather have heard a term. Beam search prunes a rare word's unlikely first token
    ("tourn-iquet") before the audio can vouch for the rest; scoring the whole word
    does not. The window's encoder output is reused when it is still at hand.
    """
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer

    encode_windows(model, [window], 1)
    assert window.encoded is not None
    frames = min(window.features(model).shape[-1], model.feature_extractor.nb_max_frames)
    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language=language)
    start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    if prompt:
        budget = model.max_length // 2 - 1  # as faster-whisper trims a prompt
        start = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())[-budget:], *start]
    tokens = [tokenizer.encode(text) for text in texts]
    batch = np.ascontiguousarray(np.repeat(window.encoded, len(texts), axis=0))
    results = model.model.align(
        ctranslate2.StorageView.from_array(batch), start, tokens, [frames] * len(texts)
    )
    return [
        float(np.log(np.maximum(np.asarray(r.text_token_probs, dtype=np.float64), 1e-12)).sum())
        for r in results
    ]
