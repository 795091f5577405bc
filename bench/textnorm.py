"""Text normalisation shared by the accuracy benchmarks (WER scores words, not typography)."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

PUNCT = re.compile(r"(?<!\d)[.,](?!\d)|[^\w\s.,'’-]|(?<=\s)[-'’]|[-'’](?=\s)")
AUDIO = (".wav", ".ogg", ".opus", ".mp3", ".flac", ".m4a")


def normalise(text: str, lang: str = "en") -> str:
    """Words only: case folded, punctuation dropped (except inside numbers), hyphens
    read as spaces, number words as digits on both sides ("deux" = "2": dictation
    conventions want digits where read-speech references spell numbers out)."""
    from text_to_num import alpha2digit

    text = unicodedata.normalize("NFC", text).casefold().replace("’", "'")
    text = PUNCT.sub(" ", f" {text} ").replace("-", " ")
    text = alpha2digit(" ".join(text.split()), lang, threshold=0)
    return " ".join(text.split())


def language_of(path: Path) -> str:
    """``fleurs-fr-003.ogg``, ``test_fr.wav``, ``common_voice_fr_1.mp3`` -> fr; else en."""
    return "fr" if re.search(r"(^|[-_])fr([-_.]|$)", path.stem) else "en"


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in AUDIO)


def reference(audio: Path) -> str | None:
    """``NAME.txt`` beside the audio, or the file's line in the folder's ``refs.jsonl``."""
    path = audio.with_suffix(".txt")
    if path.is_file():
        return path.read_text(encoding="utf-8")
    refs = audio.parent / "refs.jsonl"
    if refs.is_file():
        for line in refs.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line) if line.strip() else {}
            if entry.get("id") == audio.name:
                return str(entry["text"])
    return None
