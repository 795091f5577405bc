"""Test audio made on the spot: espeak-ng speech, re-encoded with PyAV.

Nothing is committed: every clip is synthesised from invented text, so tests need no
recordings and contain nothing that could be a real patient.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SENTENCES = (
    "Dear Doctor Patel, thank you for referring this patient with palpitations.",
    "The chest pain resolved after two days of rest and hydration.",
    "Please arrange a follow up appointment in six weeks with blood tests.",
    "The contract was signed by both parties on the first of March.",
    "Her blood pressure today was normal and she feels much better.",
    "We discussed the results of the scan and the treatment plan.",
)

# one word Whisper base gets right in each sentence, to check a transcript is the right one
KEYWORDS = ("patel", "chest", "weeks", "contract", "pressure", "scan")

# container format, codec, sample rate for each dropped-file type the pipeline accepts
ENCODINGS = {
    ".mp3": ("mp3", "libmp3lame", 16000),
    ".m4a": ("ipod", "aac", 16000),
    ".ogg": ("ogg", "libopus", 16000),
    ".opus": ("opus", "libopus", 16000),
    ".flac": ("flac", "flac", 16000),
    ".webm": ("webm", "libopus", 16000),
    ".amr": ("amr", "libopencore_amrnb", 8000),
    ".wav": ("wav", "pcm_s16le", 16000),
}


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, out: Path, *, voice: str = "en-us", rate: int = 150) -> Path:
    """Write ``text`` spoken by espeak-ng as a WAV file."""
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(out), text],
        check=True,
        capture_output=True,
    )
    return out


def read_mono(path: Path, rate: int) -> np.ndarray:
    """Decode and resample to mono float32 at ``rate``."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks)


def encode(source: Path, target: Path) -> Path:
    """Re-encode ``source`` into the format named by ``target``'s extension."""
    fmt, codec, rate = ENCODINGS[target.suffix]
    samples = read_mono(source, rate)
    with av.open(str(target), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        if codec == "libopencore_amrnb":
            stream.bit_rate = 12200
        frame_size = stream.codec_context.frame_size or 1024
        pts = 0
        for start in range(0, len(samples), frame_size):
            block = samples[start : start + frame_size]
            if len(block) < frame_size and stream.codec_context.frame_size:
                block = np.pad(block, (0, frame_size - len(block)))
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += len(block)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return target


def silence_wav(target: Path, seconds: float, rate: int = 16000) -> Path:
    """A valid WAV of digital silence (no speech for Whisper to find)."""
    import wave

    with wave.open(str(target), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(b"\x00\x00" * int(seconds * rate))
    return target
