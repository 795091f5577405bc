"""Speak the held-out dictations with espeak-ng (16 kHz mono WAV beside each text).

The audio is not committed (``*.wav`` is git-ignored): run this once, then

    .venv/bin/python bench/heldout/make_audio.py
    .venv/bin/python bench/asr.py bench/heldout

Each ``NAME.spoken.txt`` is what is said (spoken commands included), ``NAME.txt``
the letter a secretary would type, ``NAME.terms.txt`` the domain terms that must
come out right; ``voices.json`` gives the espeak-ng voice and rate of each.
These dictations were written for this benchmark (invented people, terms taken
from the shipped lexicons) and were never used to tune the pipeline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
RATE = 16000


def to_16k_mono(source: Path, target: Path) -> None:
    """Resample espeak-ng's 22.05 kHz output to what Whisper expects."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    chunks = []
    with av.open(str(source)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray() for f in resampler.resample(frame)]
    chunks += [f.to_ndarray() for f in resampler.resample(None)]
    samples = np.concatenate(chunks, axis=1).astype(np.int16)
    with av.open(str(target), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def main() -> int:
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (apt-get install espeak-ng)", file=sys.stderr)
        return 2
    voices = json.loads((HERE / "voices.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        for entry in voices:
            name, voice, rate = entry["name"], entry["voice"], str(entry["rate"])
            text = (HERE / f"{name}.spoken.txt").read_text(encoding="utf-8").strip()
            raw = Path(tmp) / f"{name}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", rate, "-w", str(raw), text], check=True)
            to_16k_mono(raw, HERE / f"{name}.wav")
            print(f"{name}.wav ({voice}, {rate} wpm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
