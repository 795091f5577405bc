"""Audio around a word: decoded windows, time-stretch, a player run in the background."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import audiogen
from transcribe.review.audio import Listening, Player, decode_window, detect_player


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audio")
    wav = audiogen.speak(audiogen.SENTENCES[2], folder / "s.wav")
    audiogen.encode(wav, folder / "s.ogg")
    return folder / "s.ogg"


def test_window_is_cut_and_stretched(speech: Path) -> None:
    plain = decode_window(speech, 1.0, 2.5)
    assert abs(plain.size / 16000 - 1.5) < 0.02 and plain.any()
    slow = decode_window(speech, 1.0, 2.5, speed=0.75)
    assert abs(slow.size / 16000 - 2.0) < 0.1
    assert decode_window(speech, 100.0, 101.0).size == 0  # past the end: silence, no error


def fake_player(tmp_path: Path) -> Path:
    """Copies what it is asked to play, then plays for a long time."""
    script = tmp_path / "player.sh"
    script.write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/played.wav\nexec sleep 30\n')
    script.chmod(0o755)
    return script


def test_player_plays_in_the_background_and_cleans_up(speech: Path, tmp_path: Path) -> None:
    work = tmp_path / "job"
    listening = Listening(Player([str(fake_player(tmp_path)), "{file}"]), work)
    assert listening.player.available
    listening.change_speed(+1)
    started = time.monotonic()
    listening.play(speech, 0.5, 1.5)
    assert time.monotonic() - started < 5 and listening.player.playing
    deadline = time.monotonic() + 5
    while not (tmp_path / "played.wav").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "played.wav").stat().st_size > 16000
    assert next(p.name for p in work.iterdir()).startswith(".play-")
    listening.pause()
    assert not listening.player.playing and not any(work.iterdir())


def test_no_player_is_not_an_error(speech: Path, tmp_path: Path) -> None:
    player = Player(())
    assert not player.available
    player.play(decode_window(speech, 0, 1), tmp_path)
    player.stop()
    assert not any(tmp_path.iterdir())
    assert Player(["no-such-player-here"]).available is False
    found = detect_player()
    assert found is None or "{file}" in found
