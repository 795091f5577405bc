"""Accuracy of the pipeline against plain faster-whisper, on the same audio and model.

For each audio file with a reference ``NAME.txt`` beside it, runs plain faster-whisper
(as its README shows: beam 5, language given) and the pipeline (vocabulary prompt,
corrections, dictation formatting) with the same loaded model, in one run, and prints
WER against the written reference, domain-term recall (``NAME.terms.txt``) and the
real-time factor. ``--bias``, ``--passes`` and ``--check`` run the pipeline once per
way of biasing Whisper (initial prompt, hotwords, none; one decoding, or a second pass
prompted with the terms the first nearly heard; lexicon corrections checked by Whisper
on the audio, or by spelling alone), which is how the defaults were chosen.

    .venv/bin/python bench/asr.py ../shared/data/asr-dev/synthetic-en \\
        ../shared/data/asr-dev/fleurs [--bias initial_prompt,hotwords,none] [--passes 1,2] \\
        [--check on,off]

WER is computed on normalised text (case folded, punctuation dropped, except inside
numbers, hyphens read as spaces), so it scores words, not typography: "pre-action"
and "pre action", "67-year-old" and "67 year old" are the same words; the format
benchmark scores typography. Term recall uses the same normalisation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import jiwer  # noqa: E402
from textnorm import AUDIO, language_of, normalise  # noqa: E402

from transcribe.asr.engine import WhisperEngine  # noqa: E402
from transcribe.config import ClientConfig, Config, load_config  # noqa: E402
from transcribe.stages.transcription import Dictation, transcribe_file  # noqa: E402
from transcribe.workspace import init_workspace  # noqa: E402


@dataclass(frozen=True)
class Item:
    audio: Path
    reference: str
    terms: tuple[str, ...]
    language: str
    domain: str
    duration: float


@dataclass
class Score:
    hyps: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    terms_found: int = 0
    terms_total: int = 0
    seconds: float = 0.0
    audio_s: float = 0.0

    def add(self, item: Item, text: str, seconds: float) -> None:
        lang = item.language
        self.hyps.append(normalise(text, lang))
        self.refs.append(normalise(item.reference, lang))
        folded = f" {normalise(text, lang)} "
        self.terms_found += sum(f" {normalise(t, lang)} " in folded for t in item.terms)
        self.terms_total += len(item.terms)
        self.seconds += seconds
        self.audio_s += item.duration

    def row(self) -> tuple[str, str, str]:
        wer = 100 * jiwer.wer(self.refs, self.hyps)
        recall = f"{100 * self.terms_found / self.terms_total:.1f}%" if self.terms_total else "-"
        return f"{wer:.1f}%", recall, f"{self.seconds / self.audio_s:.3f}"


def domain_of(path: Path) -> str:
    return {"med": "medical", "legal": "legal"}.get(path.stem.split("-")[0], "general")


def collect(folders: list[Path]) -> dict[str, list[Item]]:
    import av

    sets: dict[str, list[Item]] = {}
    for folder in folders:
        for audio in sorted(p for p in folder.iterdir() if p.suffix in AUDIO):
            reference = audio.with_suffix(".txt")
            if not reference.is_file():
                continue
            terms = audio.with_suffix(".terms.txt")
            with av.open(str(audio)) as container:
                duration = container.duration / 1e6
            item = Item(
                audio,
                reference.read_text(encoding="utf-8"),
                tuple(t for t in terms.read_text().splitlines() if t.strip())
                if terms.is_file()
                else (),
                language_of(audio),
                domain_of(audio),
                duration,
            )
            sets.setdefault(f"{folder.name}-{item.language}", []).append(item)
    return sets


def bench_config(scratch: Path, bias: str, passes: int = 2, check: bool = True) -> Config:
    """A scratch workspace whose only difference is how the vocabulary is used."""
    home = scratch / f"{bias}-{passes}-{check}"
    init_workspace(home)
    path = home / "transcribe.toml"
    text = path.read_text().replace('bias = "initial_prompt"', f'bias = "{bias}"')
    text = text.replace("second_pass = true", f"second_pass = {str(passes == 2).lower()}")
    text = text.replace("acoustic_check = true", f"acoustic_check = {str(check).lower()}")
    path.write_text(text)
    return load_config(home)


def run_plain(engine: WhisperEngine, item: Item) -> tuple[str, float]:
    started = time.perf_counter()
    segments, _ = engine.model.transcribe(str(item.audio), beam_size=5, language=item.language)
    text = " ".join(s.text.strip() for s in segments)
    return text, time.perf_counter() - started


def run_pipeline(config: Config, engine: WhisperEngine, item: Item) -> tuple[str, float]:
    client = ClientConfig(id="bench", name="bench", language=item.language, domain=item.domain)
    started = time.perf_counter()
    _, draft = transcribe_file(config, engine, item.audio, Dictation(client, None, item.language))
    return draft.text, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument(
        "--bias", default="initial_prompt", help="comma-separated: initial_prompt, hotwords, none"
    )
    parser.add_argument(
        "--passes", default="2", help="comma-separated: 1 (one decoding), 2 (second pass)"
    )
    parser.add_argument(
        "--check", default="on", help="comma-separated: on (acoustic check), off (spelling only)"
    )
    args = parser.parse_args()
    sets = collect(args.folders)
    variants = [
        (bias, int(passes), check == "on")
        for bias in args.bias.split(",")
        for passes in args.passes.split(",")
        for check in args.check.split(",")
        if not (bias == "none" and passes == "2")  # nothing to refocus
    ]
    with tempfile.TemporaryDirectory() as tmp:
        configs = {
            f"{bias}, {passes} pass{'es' if passes > 1 else ''}"
            f"{', checked' if check else ''}": bench_config(Path(tmp), bias, passes, check)
            for bias, passes, check in variants
        }
        engine = WhisperEngine(next(iter(configs.values())).transcription)
        engine.load()  # once, outside the timings
        print(
            f"model: {engine.model_ref.name} ({engine.device.device} "
            f"{engine.device.compute_type}, {engine.device.cpu_threads} threads)"
        )
        print("| set | files | system | WER | term recall | RTF |\n|---|---|---|---|---|---|")
        for name, items in sets.items():
            scores: dict[str, Score] = {}
            for item in items:
                text, seconds = run_plain(engine, item)
                scores.setdefault("plain faster-whisper", Score()).add(item, text, seconds)
                for variant, config in configs.items():
                    text, seconds = run_pipeline(config, engine, item)
                    scores.setdefault(f"pipeline ({variant})", Score()).add(item, text, seconds)
                print(f"  {item.audio.name}", file=sys.stderr, flush=True)
            for system, score in scores.items():
                wer, recall, rtf = score.row()
                print(
                    f"| {name} | {len(items)} | {system} | {wer} | {recall} | {rtf} |", flush=True
                )


if __name__ == "__main__":
    main()
