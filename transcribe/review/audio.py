"""Playing the audio around a word: decode a short window, hand it to a player.

The one wrapper around the external player (house rule 5). The window is decoded
with PyAV (any format intake accepts, .dss included), slowed or sped up with
FFmpeg's ``atempo`` filter so pitch stays natural whatever the player, written as
a WAV in the job's private work folder, played in the background, and deleted as
soon as the player exits or is stopped. No player: :attr:`Player.available` is
false and the review loop carries on without sound.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import wave
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import AudioError

log = logging.getLogger(__name__)

RATE = 16000
SPEEDS = (0.5, 0.6, 0.75, 0.9, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0)
KNOWN_PLAYERS: tuple[tuple[str, ...], ...] = (
    ("ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet", "{file}"),
    ("paplay", "{file}"),
    ("aplay", "-q", "{file}"),
    ("afplay", "{file}"),
)


def detect_player() -> tuple[str, ...] | None:
    """The first known player installed here, as a command template with ``{file}``."""
    for command in KNOWN_PLAYERS:
        if shutil.which(command[0]):
            return command
    return None


def decode_window(path: Path, start: float, end: float, *, speed: float = 1.0) -> np.ndarray:
    """Mono 16 kHz int16 samples of ``[start, end)`` seconds, time-stretched by ``speed``."""
    start = max(0.0, start)
    try:
        samples, first = _decode_from(path, start, end)
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioError(f"cannot decode {path.name}: {exc}") from None
    begin = max(0, int((start - first) * RATE))
    stop = max(begin, int((end - first) * RATE))
    window = samples[begin:stop]
    if speed != 1.0 and window.size:
        window = _atempo(window, speed)
    return window


def _decode_from(path: Path, start: float, end: float) -> tuple[np.ndarray, float]:
    """Decode from a seek point just before ``start`` until past ``end``."""
    chunks: list[np.ndarray] = []
    first: float | None = None
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if start > 0:
            container.seek(int(start * av.time_base), any_frame=False)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in container.decode(stream):
            if first is None:
                first = float(frame.time) if frame.time is not None else 0.0
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            if frame.time is not None and frame.time > end:
                break
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return samples.astype(np.int16, copy=False), first or 0.0


def _atempo(samples: np.ndarray, speed: float) -> np.ndarray:
    """FFmpeg's atempo keeps the pitch; one filter stage accepts 0.5..100."""
    graph = av.filter.Graph()
    source = graph.add_abuffer(
        format="s16", sample_rate=RATE, layout="mono", time_base=Fraction(1, RATE)
    )
    tempo = graph.add("atempo", f"{speed:g}")
    sink = graph.add("abuffersink")
    source.link_to(tempo)
    tempo.link_to(sink)
    graph.configure()
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = 0
    frame.time_base = Fraction(1, RATE)
    graph.push(frame)
    graph.push(None)
    out: list[np.ndarray] = []
    while True:
        try:
            out.append(graph.pull().to_ndarray().reshape(-1))
        except (av.error.BlockingIOError, av.error.EOFError):
            break
    return np.concatenate(out).astype(np.int16) if out else samples


def wav_bytes(samples: np.ndarray) -> bytes:
    """Mono 16 kHz int16 samples as a WAV file's bytes (what the service sends)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def write_wav(samples: np.ndarray, folder: Path) -> Path:
    """A private temporary WAV in ``folder`` (the job's work folder, 0700)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".play-", suffix=".wav", dir=folder)
    with os.fdopen(fd, "wb") as handle:
        handle.write(wav_bytes(samples))
    return Path(name)


class Player:
    """One sound at a time, in the background; starting a new one stops the old."""

    def __init__(self, command: Sequence[str] | None) -> None:
        self.command = tuple(command) if command else ()
        self._process: subprocess.Popen[bytes] | None = None
        self._file: Path | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return bool(self.command) and shutil.which(self.command[0]) is not None

    @property
    def playing(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def argv(self, file: Path) -> list[str]:
        args = [part.replace("{file}", str(file)) for part in self.command]
        return args if any("{file}" in part for part in self.command) else [*args, str(file)]

    def play(self, samples: np.ndarray, folder: Path) -> None:
        """Stop what is playing, write the clip, start the player without waiting."""
        self.stop()
        if not self.available:
            return
        file = write_wav(samples, folder)
        try:
            process = subprocess.Popen(
                self.argv(file),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            file.unlink(missing_ok=True)
            log.warning("player %s failed: %s", self.command[0], exc)
            raise AudioError(f"the audio player {self.command[0]} failed: {exc}") from None
        with self._lock:
            self._process, self._file = process, file
        threading.Thread(target=self._reap, args=(process, file), daemon=True).start()

    def _reap(self, process: subprocess.Popen[bytes], file: Path) -> None:
        """Delete the clip as soon as its player exits, whoever stopped it."""
        process.wait()
        file.unlink(missing_ok=True)

    def stop(self) -> None:
        with self._lock:
            process, file = self._process, self._file
            self._process = self._file = None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if file is not None:
            file.unlink(missing_ok=True)


class Listening:
    """Playback state of the review loop: the player, the speed, what to play."""

    def __init__(self, player: Player, folder: Path) -> None:
        self.player = player
        self.folder = folder
        self.speed_index = SPEEDS.index(1.0)

    @property
    def speed(self) -> float:
        return SPEEDS[self.speed_index]

    def play(self, audio: Path, start: float, end: float) -> None:
        """Decode ``[start, end)`` at the current speed and play it in the background."""
        self.play_samples(decode_window(audio, start, end, speed=self.speed))

    def play_samples(self, samples: np.ndarray) -> None:
        """Play a clip already at the right speed (decoded here, or sent by a server)."""
        self.player.play(samples, self.folder)

    def change_speed(self, step: int) -> float:
        self.speed_index = min(max(self.speed_index + step, 0), len(SPEEDS) - 1)
        return self.speed

    def pause(self) -> None:
        self.player.stop()
