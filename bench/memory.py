"""Peak memory (RSS) of `batch` on one long dictation, e.g. two hours.

Builds a long 16 kHz WAV from espeak-ng sentences separated by pauses (streamed to
disk, never held in memory), runs the real `batch` command on it in a fresh process,
and reads the child's peak RSS from the kernel (``wait4``). ``--plain`` also measures
plain faster-whisper on the same file for comparison (it decodes the whole file at
once, so expect it to grow with the duration).

    .venv/bin/python bench/memory.py [--hours 2] [--plain]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.audiogen import SENTENCES, read_mono, speak  # noqa: E402

RATE = 16000


def long_dictation(target: Path, hours: float, scratch: Path) -> Path:
    """Sentences and pauses repeated to ``hours``, written block by block."""
    import numpy as np

    clips = []
    for index, sentence in enumerate(SENTENCES):
        raw = speak(sentence, scratch / f"s{index}.wav")
        clips.append((read_mono(raw, RATE) * 32767).astype("<i2").tobytes())
    pause = bytes(2 * RATE * 2)  # two seconds of silence
    total = int(hours * 3600 * RATE * 2)
    written = 0
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        while written < total:
            for clip in clips:
                block = (clip + pause)[: total - written]
                out.writeframes(block)
                written += len(block)
                if written >= total:
                    break
    del np
    return target


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run ``command``; its peak resident memory in MB and its wall time."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:4]} failed: {proc.stderr.read().decode()[-500:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


PLAIN = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8")
segments, info = model.transcribe(sys.argv[2], beam_size=5, language="en", vad_filter=True)
for _ in segments:
    pass
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()
    from transcribe.asr.models import resolve_model

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        audio = long_dictation(scratch / "long-dictation.wav", args.hours, scratch)
        size_mb = audio.stat().st_size / 1e6
        home = scratch / "ws"
        cli = [sys.executable, str(PROJECT / "cli.py"), "--home", str(home)]
        subprocess.run([*cli, "init", "--demo"], check=True, capture_output=True)
        shutil.copy2(audio, home / "inbox" / "riverside-clinic" / audio.name)
        batch_mb, batch_s = peak_rss_mb([*cli, "batch"])
        print(f"{args.hours:g} h dictation ({size_mb:.0f} MB WAV), model base, CPU int8")
        print("| system | peak RSS MB | wall s |\n|---|---|---|")
        print(f"| transcribe batch | {batch_mb:.0f} | {batch_s:.0f} |")
        if args.plain:
            model = resolve_model("base").location
            plain_mb, plain_s = peak_rss_mb([sys.executable, "-c", PLAIN, model, str(audio)])
            print(f"| plain faster-whisper | {plain_mb:.0f} | {plain_s:.0f} |")
        print(f"target: batch under 1500 MB -> {'met' if batch_mb < 1500 else 'NOT met'}")


if __name__ == "__main__":
    main()
