"""Throughput of `batch` against plain sequential faster-whisper, same files, same model.

Plain is faster-whisper as its README shows it (``WhisperModel(..., device, compute_type)``,
``model.transcribe(path, beam_size=5)`` file after file). `batch` is the real command on a
fresh workspace, the files dropped into per-language client inboxes. Both run as fresh
processes, one after the other, in this run; each includes imports and model load.
WER is on Whisper's own text (transcript.json), against ``NAME.txt`` where present.

    .venv/bin/python bench/throughput.py DIR [--domain general] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import jiwer  # noqa: E402
from textnorm import audio_files, language_of, normalise, reference  # noqa: E402

from transcribe.asr.engine import cuda_device_count  # noqa: E402
from transcribe.asr.models import resolve_model  # noqa: E402

PLAIN = """
import json, sys
from faster_whisper import WhisperModel
device = sys.argv[2]
model = WhisperModel(sys.argv[1], device=device,
                     compute_type="float16" if device == "cuda" else "int8")
texts = {}
for path in sys.argv[3:]:
    segments, info = model.transcribe(path, beam_size=5)
    texts[path] = " ".join(s.text.strip() for s in segments)
print(json.dumps(texts))
"""


def run_plain(files: list[Path], device: str) -> tuple[float, dict[str, str]]:
    model = resolve_model("base").location
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN, model, device, *map(str, files)],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, json.loads(done.stdout)


def workspace(home: Path, domain: str, device: str) -> None:
    subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), "--home", str(home), "init"],
        check=True,
        capture_output=True,
    )
    config = home / "transcribe.toml"
    text = config.read_text().replace('device = "auto"', f'device = "{device}"')
    for lang in ("fr", "en"):
        text += f'\n[clients.bench-{lang}]\nlanguage = "{lang}"\ndomain = "{domain}"\n'
    config.write_text(text)


def run_batch(files: list[Path], home: Path, domain: str, device: str) -> tuple[float, dict]:
    workspace(home, domain, device)
    cli = [sys.executable, str(PROJECT / "cli.py"), "--home", str(home)]
    subprocess.run([*cli, "status"], check=True, capture_output=True)  # creates inbox folders
    for path in files:
        folder = home / "inbox" / f"bench-{language_of(path)}"
        folder.mkdir(exist_ok=True)
        shutil.copy2(path, folder / path.name)  # old mtime: stable at once
    started = time.perf_counter()
    subprocess.run([*cli, "batch"], check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    jobs = json.loads(
        subprocess.run(
            [*cli, "status", "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    texts = {}
    for job in jobs:
        transcript = home / "work" / "jobs" / job["id"] / "transcript.json"
        texts[job["source"]] = json.loads(transcript.read_text())["text"]
    return elapsed, texts


def wer(files: list[Path], texts: dict[str, str]) -> str:
    pairs = [
        (normalise(ref, language_of(f)), normalise(texts[key], language_of(f)))
        for f in files
        if (ref := reference(f)) is not None
        for key in (str(f), f.name)
        if key in texts
    ]
    if not pairs:
        return "-"
    refs, hyps = zip(*pairs, strict=True)
    return f"{100 * jiwer.wer(list(refs), list(hyps)):.2f}%"


def audio_seconds(files: list[Path]) -> float:
    import av

    total = 0.0
    for path in files:
        with av.open(str(path)) as container:
            total += container.duration / 1e6
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--domain", default="general", choices=("general", "medical", "legal"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()
    device = args.device if args.device != "auto" else ("cuda" if cuda_device_count() else "cpu")
    files = audio_files(args.folder)
    audio = audio_seconds(files)
    plain_s, plain_texts = run_plain(files, device)
    with tempfile.TemporaryDirectory() as tmp:
        batch_s, batch_texts = run_batch(files, Path(tmp) / "ws", args.domain, device)
    print(f"{len(files)} files, {audio:.0f} s of audio, model base, device {device}")
    print("| system | wall s | audio s per wall s | WER |\n|---|---|---|---|")
    print(
        f"| plain faster-whisper (sequential) | {plain_s:.1f} | {audio / plain_s:.2f} | "
        f"{wer(files, plain_texts)} |"
    )
    print(
        f"| transcribe batch | {batch_s:.1f} | {audio / batch_s:.2f} | {wer(files, batch_texts)} |"
    )
    print(f"throughput ratio batch/plain: {plain_s / batch_s:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
