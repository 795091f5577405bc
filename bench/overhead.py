"""Pipeline overhead: `watch --once` on one clip versus plain faster-whisper.

Both sides run as fresh processes (imports and model load included), alternately,
``--repeat`` times, on the same clip, model and decoding options. The pipeline side
starts from a new workspace each time, so it pays for intake, hashing, probing, the
job store, post-processing and writing transcript.json and draft.json too.

With ``--domain general`` (the default) the client has no vocabulary prompt, so both
sides decode with identical options and the difference is the pipeline's machinery.
``--domain medical`` adds the vocabulary prompt: the difference then also includes
what biasing costs in decoding (a longer prompt, different text).

    .venv/bin/python bench/overhead.py [CLIP] [--repeat 3] [--language en] [--domain general]

Without CLIP, a one-minute English dictation is synthesised with espeak-ng.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from transcribe.asr.engine import available_cores  # noqa: E402
from transcribe.asr.models import embedded_dir  # noqa: E402
from transcribe.runners.demo import SAMPLES  # noqa: E402

CLIENT = {"en": "riverside-clinic", "fr": "cabinet-martin"}

PLAIN = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=int(sys.argv[3]))
segments, info = model.transcribe(sys.argv[2], language=sys.argv[4], beam_size=5,
                                  vad_filter=True, word_timestamps=True,
                                  vad_parameters={"min_silence_duration_ms": 2000})
print(" ".join(s.text.strip() for s in segments))
"""


def make_clip(folder: Path) -> Path:
    text = " ".join(s.text for s in SAMPLES if s.client == "riverside-clinic") * 2
    clip = folder / "dictation.wav"
    subprocess.run(["espeak-ng", "-v", "en-gb", "-s", "150", "-w", str(clip), text], check=True)
    return clip


def run_plain(clip: Path, language: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PLAIN,
            str(embedded_dir()),
            str(clip),
            str(available_cores()),
            language,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, result.stdout.strip()


def run_pipeline(clip: Path, language: str, domain: str, scratch: Path) -> tuple[float, str]:
    home = scratch / f"ws-{time.monotonic_ns()}"
    cli = [sys.executable, str(PROJECT / "cli.py"), "--home", str(home)]
    subprocess.run([*cli, "init", "--demo"], check=True, capture_output=True)
    config = home / "transcribe.toml"
    text = config.read_text().replace('domain = "medical"', f'domain = "{domain}"')
    if domain == "general":  # no client terms either: no prompt at all, as plain
        text = re.sub(r"(?m)^vocabulary = .*$", "vocabulary = []", text)
    config.write_text(text.replace('domain = "legal"', f'domain = "{domain}"'))
    shutil.copy2(clip, home / "inbox" / CLIENT[language] / clip.name)  # keeps the old mtime
    started = time.perf_counter()
    subprocess.run([*cli, "watch", "--once"], check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    [job] = json.loads(
        subprocess.run(
            [*cli, "status", "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    shown = json.loads(
        subprocess.run(
            [*cli, "show", job["id"], "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    transcript = json.loads(Path(shown["transcript"]).read_text())
    assert transcript["options"]["beam_size"] == 5 and transcript["options"]["vad_filter"]
    shutil.rmtree(home)
    return elapsed, transcript["text"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--language", choices=sorted(CLIENT), default="en")
    parser.add_argument("--domain", choices=("general", "medical", "legal"), default="general")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        clip = args.clip or make_clip(scratch)
        plain_times, pipe_times = [], []
        for _ in range(args.repeat):
            seconds, plain_text = run_plain(clip, args.language)
            plain_times.append(seconds)
            seconds, pipe_text = run_pipeline(clip, args.language, args.domain, scratch)
            pipe_times.append(seconds)
        plain, pipe = statistics.median(plain_times), statistics.median(pipe_times)
        same = " ".join(plain_text.split()) == " ".join(pipe_text.split())
    print(
        f"clip: {clip.name}, model: base int8 on {available_cores()} CPU thread(s), "
        f"{args.repeat} alternating runs, fresh process each, client domain {args.domain}"
    )
    print(f"{'':28}{'median s':>10}{'runs':>30}")
    for label, median, times in (
        ("plain faster-whisper", plain, plain_times),
        ("watch --once (pipeline)", pipe, pipe_times),
    ):
        print(f"{label:28}{median:>10.2f}{' '.join(f'{t:.2f}' for t in times):>30}")
    print(f"overhead: {100 * (pipe / plain - 1):+.1f}%  (target < 15%); same text: {same}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
