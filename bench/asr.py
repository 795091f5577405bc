"""Accuracy and cost of the pipeline against plain faster-whisper, same audio, same model.

For each folder of audio with reference text (``NAME.txt`` beside the audio, or a
``refs.jsonl`` of ``{"id": file, "text": ...}``), runs in one process, with one
loaded model:

* plain faster-whisper as its README shows it (``beam_size=5``, language given),
  file after file;
* the pipeline (language detection, vocabulary prompt, passes, corrections,
  formatting) once per ``--variants`` entry, the set's files transcribed together
  as ``watch --once`` or ``batch`` would take them (groups of up to 8 files), or one
  by one with ``--one-by-one``.

It prints, per set and system: WER against the reference, domain-term recall
(``NAME.terms.txt``), real-time factor, time against plain, and how many files the
system got worse and better than plain.

    .venv/bin/python bench/asr.py ../shared/data/asr-dev/synthetic-en bench/heldout \\
        ../shared/data/asr-dev/fleurs ../shared/data/asr-dev/commonvoice-fr \\
        [--variants default,one-pass,vocabulary-first] [--domain medical] [--one-by-one]

``--domain`` gives every file that domain's client (a medical practice's lexicon on
ordinary read speech: biasing must never make it worse); without it, files named
``med-*``/``legal-*`` get their domain and others a general client.

WER is computed on normalised text (case folded, punctuation dropped, except inside
numbers, hyphens read as spaces, number words as digits on both sides), so it scores
words, not typography; the format benchmark scores typography.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import jiwer  # noqa: E402
from textnorm import audio_files, language_of, normalise, reference  # noqa: E402

from transcribe.asr.engine import WhisperEngine  # noqa: E402
from transcribe.asr.pipeline import Dictation, transcribe_audio  # noqa: E402
from transcribe.config import ClientConfig, Config, load_config  # noqa: E402
from transcribe.stages.transcription import GROUP_MAX_AUDIO_S, GROUP_MAX_FILES  # noqa: E402
from transcribe.workspace import init_workspace  # noqa: E402

# What each variant changes in [transcription]; "default" is the shipped config.
VARIANTS: dict[str, dict[str, bool | str]] = {
    "default": {},
    "one-pass": {"second_pass": False},
    "unguarded": {"guard": "off"},
    "guard-all": {"guard": "all"},
    "vocabulary-first": {"first_pass": "vocabulary"},
    "unchecked": {"acoustic_check": False},
    "unbiased": {"bias": "none"},
}


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
    wers: list[float] = field(default_factory=list)
    terms_found: int = 0
    terms_total: int = 0
    seconds: float = 0.0
    audio_s: float = 0.0

    def add(self, item: Item, text: str) -> None:
        lang = item.language
        hyp, ref = normalise(text, lang), normalise(item.reference, lang)
        self.hyps.append(hyp)
        self.refs.append(ref)
        self.wers.append(jiwer.wer(ref, hyp) if ref else 0.0)
        self.terms_found += sum(f" {normalise(t, lang)} " in f" {hyp} " for t in item.terms)
        self.terms_total += len(item.terms)
        self.audio_s += item.duration

    def row(self, plain: Score) -> list[str]:
        wer = 100 * jiwer.wer(self.refs, self.hyps)
        recall = f"{100 * self.terms_found / self.terms_total:.1f}%" if self.terms_total else "-"
        worse = sum(a > b + 1e-9 for a, b in zip(self.wers, plain.wers, strict=True))
        better = sum(a < b - 1e-9 for a, b in zip(self.wers, plain.wers, strict=True))
        return [
            f"{wer:.1f}%",
            recall,
            f"{self.seconds / self.audio_s:.3f}",
            f"{self.seconds / plain.seconds:.2f}x",
            f"{worse}/{better}",
        ]


def domain_of(path: Path) -> str:
    return {"med": "medical", "legal": "legal"}.get(path.stem.split("-")[0], "general")


def collect(folders: list[Path], domain: str | None) -> dict[str, list[Item]]:
    import av

    sets: dict[str, list[Item]] = {}
    for folder in folders:
        for audio in audio_files(folder):
            text = reference(audio)
            if text is None:
                continue
            terms = audio.with_suffix(".terms.txt")
            with av.open(str(audio)) as container:
                duration = container.duration / 1e6
            item = Item(
                audio,
                text,
                tuple(t for t in terms.read_text().splitlines() if t.strip())
                if terms.is_file()
                else (),
                language_of(audio),
                domain or domain_of(audio),
                duration,
            )
            sets.setdefault(f"{folder.name}-{item.language}", []).append(item)
    return sets


def bench_config(scratch: Path, name: str) -> Config:
    """A scratch workspace with the shipped config, changed as the variant says."""
    home = scratch / name
    init_workspace(home)
    config = load_config(home)
    return replace(config, transcription=replace(config.transcription, **VARIANTS[name]))


def run_plain(engine: WhisperEngine, item: Item) -> tuple[str, float]:
    started = time.perf_counter()
    segments, _ = engine.model.transcribe(str(item.audio), beam_size=5, language=item.language)
    text = " ".join(s.text.strip() for s in segments)
    return text, time.perf_counter() - started


def groups(items: list[Item], one_by_one: bool) -> list[list[Item]]:
    """The set as the watcher would take it: up to 8 files, 600 s of audio a group."""
    if one_by_one:
        return [[item] for item in items]
    found: list[list[Item]] = [[]]
    for item in items:
        audio = sum(i.duration for i in found[-1])
        if found[-1] and (
            len(found[-1]) >= GROUP_MAX_FILES or audio + item.duration > GROUP_MAX_AUDIO_S
        ):
            found.append([])
        found[-1].append(item)
    return [g for g in found if g]


def run_pipeline(
    config: Config, engine: WhisperEngine, items: list[Item], one_by_one: bool, score: Score
) -> list[dict]:
    """Transcribe the set in groups; texts go into ``score``; the transcripts come back,
    each with its file's name and the draft's text (what is scored)."""
    transcripts = []
    for group in groups(items, one_by_one):
        dictations = [(item.audio, Dictation(_client(item), None, item.language)) for item in group]
        started = time.perf_counter()
        results = transcribe_audio(config, engine, dictations)
        score.seconds += time.perf_counter() - started
        for item, result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                raise result
            score.add(item, result.draft.text)
            transcripts.append(
                {"file": item.audio.name, "draft": result.draft.text} | result.transcript
            )
    return transcripts


def _client(item: Item) -> ClientConfig:
    return ClientConfig(id="bench", name="bench", language=item.language, domain=item.domain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument(
        "--variants", default="default", help=f"comma-separated: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--domain", choices=("medical", "legal", "general"))
    parser.add_argument("--one-by-one", action="store_true", help="one dictation at a time")
    parser.add_argument("--transcripts", type=Path, help="write each variant's transcripts here")
    args = parser.parse_args()
    sets = collect(args.folders, args.domain)
    names = args.variants.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        configs = {name: bench_config(Path(tmp), name) for name in names}
        engine = WhisperEngine(next(iter(configs.values())).transcription)
        engine.load()  # once, outside the timings
        print(
            f"model: {engine.model_ref.name} ({engine.device.device} "
            f"{engine.device.compute_type}, {engine.device.cpu_threads} threads); "
            f"{'one by one' if args.one_by_one else 'grouped as the watcher takes them'}"
        )
        print("| set | files | system | WER | term recall | RTF | time vs plain | worse/better |")
        print("|---|---|---|---|---|---|---|---|")
        for name, items in sets.items():
            plain = Score()
            for item in items:
                text, seconds = run_plain(engine, item)
                plain.add(item, text)
                plain.seconds += seconds
            rows = {"plain faster-whisper": plain}
            for variant, config in configs.items():
                score = Score()
                transcripts = run_pipeline(config, engine, items, args.one_by_one, score)
                rows[f"pipeline ({variant})"] = score
                if args.transcripts:
                    args.transcripts.mkdir(parents=True, exist_ok=True)
                    out = args.transcripts / f"{name}-{variant}.json"
                    out.write_text(json.dumps(transcripts, ensure_ascii=False, indent=1))
            for system, score in rows.items():
                cells = " | ".join(score.row(plain))
                print(f"| {name} | {len(items)} | {system} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
