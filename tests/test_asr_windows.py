"""Speech windows: packing, the short tail, clocks, and pieces that match a whole file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transcribe.asr.decode import decode_file
from transcribe.asr.windows import (
    CHUNK_S,
    SAMPLE_RATE,
    TAIL_S,
    Window,
    file_windows,
    memory_windows,
)
from transcribe.config import Limits

S = SAMPLE_RATE


def stretches(*seconds: tuple[float, float]) -> list[dict[str, int]]:
    return [{"start": int(a * S), "end": int(b * S)} for a, b in seconds]


@pytest.fixture(scope="module")
def letter(clips: list[Path]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The six test sentences, three times, 0.8 s of silence between them (too short
    for VAD to split: one stretch of speech); and where the silences are."""
    pieces, silences, at = [], [], 0.0
    for clip in [*clips, *clips, *clips]:
        speech = decode_file(clip, Limits())
        pieces += [speech, np.zeros(int(0.8 * S), np.float32)]
        at += speech.size / S
        silences.append((at, at + 0.8))
        at += 0.8
    return np.concatenate(pieces), silences


def test_windows_are_cut_at_the_quietest_moment_20_to_30_s_in(
    letter: tuple[np.ndarray, list[tuple[float, float]]],
) -> None:
    audio, silences = letter
    windows = memory_windows(0, audio)
    assert len(windows) >= 3 and [w.index for w in windows] == list(range(len(windows)))
    for window in windows[:-1]:
        assert 20.0 <= window.duration <= CHUNK_S
        end = window.end_s
        assert any(a - 0.3 <= end <= b + 0.3 for a, b in silences), f"cut at {end:.1f} s"
    assert windows[-1].duration <= CHUNK_S + TAIL_S


def test_a_short_last_piece_stays_with_the_window_before_it(clips: list[Path]) -> None:
    """ "radiograph" alone in a 2-s window came out as "Rated oblast"."""
    speech = [decode_file(clip, Limits()) for clip in [*clips, *clips]]
    lengths = np.cumsum([piece.size for piece in speech])
    count = int(np.searchsorted(lengths, 32 * S)) + 1  # a little over 30 s of speech
    silence = np.zeros(12 * S, np.float32)  # a file over 40 s: not one window as it is
    windows = memory_windows(0, np.concatenate([silence, *speech[:count]]))
    assert len(windows) == 1 and CHUNK_S < windows[0].duration < CHUNK_S + TAIL_S
    assert windows[0].start_s > 11.0  # the silence is not decoded


def test_a_short_file_is_one_window_of_its_whole_audio(clips: list[Path]) -> None:
    """Whisper sees what plain faster-whisper sees: silences kept, nothing joined."""
    silence = np.zeros(3 * S, np.float32)
    audio = np.concatenate([silence, decode_file(clips[0], Limits()), silence, silence])
    (window,) = memory_windows(0, audio)
    assert np.array_equal(window.audio, audio)
    assert window.speech == [{"start": 0, "end": audio.size}]
    assert memory_windows(0, np.zeros(20 * S, np.float32)) == []  # no speech: nothing


def test_window_and_file_clocks_map_both_ways() -> None:
    window = Window(0, 0, np.zeros(8 * S, np.float32), stretches((2, 5), (9, 14)))
    assert window.to_file_time(1.0) == pytest.approx(3.0)
    assert window.to_file_time(4.0) == pytest.approx(10.0)
    assert window.to_window_time(10.0) == pytest.approx(4.0)
    assert window.to_window_time(7.0) == pytest.approx(3.0)  # a pause: where speech resumes
    assert (window.start_s, window.end_s) == (2.0, 14.0)


def test_a_file_decoded_in_pieces_gives_the_windows_of_the_whole(clips: list[Path]) -> None:
    """Pieces of 3 s force windows to be carried from piece to piece."""
    path = clips[3]
    whole = memory_windows(0, decode_file(path, Limits()))
    found = list(file_windows(0, path, Limits(), piece_s=3.0))
    duration = found.pop()
    assert isinstance(duration, float) and duration > 0
    assert [w.speech for w in found] == [w.speech for w in whole]
    for a, b in zip(found, whole, strict=True):
        assert np.array_equal(a.audio, b.audio)
