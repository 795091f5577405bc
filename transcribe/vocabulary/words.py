"""Whisper words as plain dicts, the shape transcript.json stores them in.

Corrections accept faster-whisper ``Word`` objects, our own :class:`Word`, or
dicts read back from transcript.json, and always return JSON-ready dicts so the
result can be saved straight away (stage results are files).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A leading hyphen is an edge too: Whisper writes the second half of "void-codeine" as
# the word "-codeine", and a term put in its place must keep it ("voidcodeine" else).
_EDGE = re.compile(r"^(\s*[\"'«(\[-]*)(.*?)([\"'»)\].,;:!?…]*)$", re.DOTALL)
_BREAK = re.compile(r"[.,;:!?…)\]»]$")


@dataclass(frozen=True)
class Word:
    """One timed word as Whisper returns it (the text keeps its leading space)."""

    word: str
    start: float
    end: float
    probability: float


def as_word_dict(word: Mapping[str, Any] | Any) -> dict[str, Any]:
    """Copy a word (dict or object with the same attributes) into a new dict."""
    if isinstance(word, Mapping):
        return dict(word)
    return {
        "word": word.word,
        "start": word.start,
        "end": word.end,
        "probability": word.probability,
    }


def split_edges(text: str) -> tuple[str, str, str]:
    """(leading space and opening marks, core, closing punctuation) of a word."""
    match = _EDGE.match(text)
    assert match is not None  # the pattern matches any string
    return match.group(1), match.group(2), match.group(3)


def ends_with_comma(text: str) -> bool:
    """Whisper's comma: it scatters them inside phrases ("medial, parapatellar")."""
    return text.rstrip().endswith(",")


def ends_clause(text: str) -> bool:
    """True when the word carries punctuation a phrase should not run across."""
    return bool(_BREAK.search(text.rstrip()))


def is_low_confidence(word: Mapping[str, Any], max_probability: float) -> bool:
    """Only words Whisper itself doubted may be changed; no probability means sure."""
    probability = word.get("probability")
    if not isinstance(probability, int | float):
        return False
    return probability < max_probability


def replace_span(
    words: list[dict[str, Any]], start: int, end: int, text: str, **marks: Any
) -> dict[str, Any]:
    """One word dict standing for ``words[start:end]`` now reading ``text``.

    Keeps the span's timing, the original text and probabilities for the review
    UI, and the lowest probability so the word still shows as doubtful until a
    secretary has looked at it.
    """
    span = words[start:end]
    lead, core, _ = split_edges(span[0]["word"])
    _, _, tail = split_edges(span[-1]["word"])
    if core[:1].isupper() and text[:1].islower():
        text = text[:1].upper() + text[1:]
    probabilities = [w.get("probability") for w in span]
    known = [p for p in probabilities if isinstance(p, int | float)]
    merged = dict(span[0])
    merged.update(
        word=f"{lead}{text}{tail}",
        start=span[0].get("start"),
        end=span[-1].get("end"),
        probability=min(known) if known else None,
        original="".join(w["word"] for w in span),
        original_probabilities=probabilities,
        **marks,
    )
    return merged
