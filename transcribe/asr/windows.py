"""Speech windows: the unit every decoding pass works on.

Voice activity detection finds the stretches of speech in a file; joined end to end
they are cut into windows of 20 to 30 s (Whisper's own window is 30 s), never mixing
two files. Each window keeps its audio, its mel features and its encoder output, so the
passes that follow (language detection, the first decoding, a refocused second
decoding, a loop's re-decoding, the acoustic check) pay for the encoder once.

Two details come from measuring on dictations:

* a short last stretch (under ``TAIL_S``) is not decoded on its own: a two-second
  window of "radiograph" with no context comes out as "Rated oblast". It joins the
  window before it, which then holds up to 40 s and is decoded the way faster-whisper
  decodes a file: 30 s, then a resumption from the last timestamp with the text so
  far as context. (Sharing the speech of the last two windows evenly was tried: the
  cut then falls mid-sentence, and both halves lost words there.);
* a window ends at a pause: a long one between VAD stretches if it falls 20-30 s
  in, else the quietest moment by Silero's speech probability, so sentences are
  rarely cut in two;
* a short file (up to 40 s, most dictations) is one window of its whole audio,
  silences included: Whisper then sees exactly what plain faster-whisper sees and
  writes the same first decoding (joining the speech stretches shifted the features
  and changed words on clips of real French speech);
* a long file is decoded in pieces (``piece_s``), the last window of each piece
  carried into the next, so a two-hour dictation never sits in memory whole.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Limits
from .decode import decode_stream

SAMPLE_RATE = 16000
CHUNK_S = 30.0
# A window ends 20-30 s after it starts, at a long pause if there is one, else at
# the quietest moment: packing whole VAD stretches closed windows early (a 1-s
# greeting before a long paragraph became a window Whisper could neither transcribe
# nor tell the language of) or cut mid-sentence ("rate of 1 | 10").
MIN_WINDOW_S = 20.0
TAIL_S = 10.0
WHOLE_FILE_S = CHUNK_S + TAIL_S  # a file this short is one window, as it is
VAD_PARAMETERS: dict[str, Any] = {"min_silence_duration_ms": 2000}


@dataclass(eq=False)
class Window:
    """Speech of one file, decoded as one unit; times map back to the file's clock."""

    file: int  # index of the file in its group
    index: int  # position of the window in its file
    audio: np.ndarray  # 16 kHz float32, the speech stretches joined
    speech: list[dict[str, int]]  # the stretches, as sample ranges of the file
    encoded: np.ndarray | None = field(default=None, repr=False)  # first 30 s, encoder output
    voice_end: int | None = None  # samples of ``audio`` up to the last speech; None: all

    @property
    def voiced_s(self) -> float:
        """How far into the window there is speech to decode (its trailing silence, in a
        short file kept whole, holds nothing but Whisper's hallucinations)."""
        end = self.audio.size if self.voice_end is None else self.voice_end
        return end / SAMPLE_RATE

    @property
    def duration(self) -> float:
        return self.audio.size / SAMPLE_RATE

    @property
    def start_s(self) -> float:
        return self.speech[0]["start"] / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.speech[-1]["end"] / SAMPLE_RATE

    @functools.cached_property
    def _clock(self) -> Any:
        from faster_whisper.vad import SpeechTimestampsMap

        return SpeechTimestampsMap(self.speech, SAMPLE_RATE)

    def to_file_time(self, t: float) -> float:
        """A time in the window's joined audio, on the file's clock."""
        return float(self._clock.get_original_time(t))

    def to_window_time(self, t: float) -> float:
        """A time on the file's clock, in the window's joined audio (a time in a
        pause between two stretches is where the later stretch begins)."""
        sample, offset = t * SAMPLE_RATE, 0
        for stretch in self.speech:
            if sample < stretch["end"]:
                return (offset + max(0.0, sample - stretch["start"])) / SAMPLE_RATE
            offset += stretch["end"] - stretch["start"]
        return offset / SAMPLE_RATE

    def features(self, model: Any) -> np.ndarray:
        """Log-mel features of the whole window (cached: every pass starts from them)."""
        cached = getattr(self, "_features", None)
        if cached is None:
            cached = model.feature_extractor(self.audio)[..., :-1]
            self._features = cached
        return cached

    def release(self) -> None:
        """Drop the features and encoder output once no pass needs them (memory)."""
        self.encoded = None
        self._features = None


def speech_stretches(
    audio: np.ndarray, vad_parameters: dict[str, Any] | None
) -> list[dict[str, int]]:
    """VAD over ``audio``: sample ranges of speech, split only at long pauses; without
    VAD (``None``: ``[transcription] vad = false``) the whole audio is one stretch."""
    if vad_parameters is None:
        return [{"start": 0, "end": audio.size}] if audio.size else []
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return get_speech_timestamps(audio, VadOptions(**vad_parameters))


def quietness(audio: np.ndarray, vad_parameters: dict[str, Any] | None) -> np.ndarray | None:
    """Silero's speech probability per 32-ms frame, smoothed over ~160 ms (None
    without VAD): where a window may be cut with the least harm."""
    if vad_parameters is None or not audio.size:
        return None
    from faster_whisper.vad import get_vad_model

    frame = 512
    padded = np.pad(audio, (0, frame - audio.size % frame))
    probabilities = np.asarray(get_vad_model()(padded), dtype=np.float32).reshape(-1)
    return np.convolve(probabilities, np.ones(5, np.float32) / 5, mode="same")


def cut(
    file: int,
    audio: np.ndarray,
    base: int,
    first: int,
    vad_parameters: dict[str, Any] | None,
) -> list[Window]:
    """Windows of ``audio`` (which starts at file sample ``base``), numbered from
    ``first``: the speech stretches joined into one stream, cut every 20-30 s at a long
    pause between stretches if there is one, else at the quietest moment; a last
    piece shorter than ``TAIL_S`` stays with the window before it. A whole short file
    with speech in it is one window, as it is."""
    stretches = speech_stretches(audio, vad_parameters)
    if not stretches:
        return []
    if base == 0 and audio.size <= int(WHOLE_FILE_S * SAMPLE_RATE):
        whole = [{"start": 0, "end": audio.size}]
        return [Window(file, first, audio, whole, voice_end=stretches[-1]["end"])]
    quiet = quietness(audio, vad_parameters)
    stream = _Stream(stretches)
    windows: list[Window] = []
    position = 0
    while position < stream.length:
        end = _window_end(stream, position, quiet)
        speech = stream.ranges(position, end)
        samples = np.concatenate([audio[a:b] for a, b in speech])
        absolute = [{"start": a + base, "end": b + base} for a, b in speech]
        windows.append(Window(file, first + len(windows), samples, absolute))
        position = end
    return windows


class _Stream:
    """Speech stretches joined end to end: positions in the stream <-> in the audio."""

    def __init__(self, stretches: Sequence[dict[str, int]]) -> None:
        self.stretches = [(s["start"], s["end"]) for s in stretches]
        self.starts = np.cumsum([0] + [b - a for a, b in self.stretches])
        self.length = int(self.starts[-1])

    def ranges(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Audio ranges of stream positions ``lo:hi``."""
        found = []
        for (a, b), offset in zip(self.stretches, self.starts, strict=False):
            start, end = max(lo - offset, 0), min(hi - offset, b - a)
            if start < end:
                found.append((a + int(start), a + int(end)))
        return found

    def to_audio(self, position: int) -> int:
        index = int(np.searchsorted(self.starts, position, side="right")) - 1
        index = min(index, len(self.stretches) - 1)
        return self.stretches[index][0] + position - int(self.starts[index])


def _window_end(stream: _Stream, position: int, quiet: np.ndarray | None) -> int:
    """Where the window starting at ``position`` ends (a stream position)."""
    chunk, tail = int(CHUNK_S * SAMPLE_RATE), int(TAIL_S * SAMPLE_RATE)
    left = stream.length - position
    if left <= chunk or left - chunk < tail:
        return stream.length  # the last window (with a short tail: up to 40 s)
    lo, hi = position + int(MIN_WINDOW_S * SAMPLE_RATE), position + chunk
    pauses = [int(s) for s in stream.starts[1:-1] if lo <= s <= hi]
    if pauses:
        return pauses[-1]
    if quiet is None:
        return hi
    candidates = np.arange(lo, hi, 512)
    frames = np.minimum([stream.to_audio(int(c)) // 512 for c in candidates], quiet.size - 1)
    return int(candidates[int(np.argmin(quiet[frames]))])


def memory_windows(
    file: int, samples: np.ndarray, vad_parameters: dict[str, Any] | None = VAD_PARAMETERS
) -> list[Window]:
    """Windows of audio already decoded (a file, or a clip in a test)."""
    return cut(file, samples, 0, 0, vad_parameters)


def file_windows(
    file: int,
    path: Path,
    limits: Limits,
    piece_s: float,
    vad_parameters: dict[str, Any] | None = VAD_PARAMETERS,
) -> Iterator[Window | float]:
    """Windows of a file decoded piece by piece in the capped child process.

    The last window of each piece is not yielded: its audio, and what follows it, is
    carried into the next piece, so a window never ends where a piece happened to. Yields
    windows in order and, last, the file's duration in seconds (a float), so the caller
    learns it without decoding twice. Raises the child's AudioError.
    """
    carry = np.zeros(0, dtype=np.float32)
    base, count, duration = 0, 0, 0.0
    pieces = decode_stream(path, limits, piece_s)
    piece = next(pieces, None)
    while piece is not None:
        following = next(pieces, None)
        duration += piece.size / SAMPLE_RATE
        audio = np.concatenate([carry, piece]) if carry.size else piece
        found = cut(file, audio, base, count, vad_parameters)
        keep = audio.size
        if following is not None and found:
            keep = found.pop().speech[0]["start"] - base
        count += len(found)
        yield from found
        carry, base = audio[keep:], base + keep
        piece = following
    yield duration
