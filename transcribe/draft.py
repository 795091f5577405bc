"""The review draft: the text a secretary corrects, anchored to Whisper's timed words.

``transcript.json`` is Whisper's output and is never edited. ``draft.json`` holds the
current text of the letter (after post-processing, then the secretary's edits), the
letter's fields, the reviewer's position, and the Whisper words, each with the span
of draft text it became (``None`` when it became punctuation or was deleted). The
text is the truth; spans are recomputed after every edit, so colouring by confidence,
jumping to doubtful words and playing the audio around them keep working.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from .fsutil import atomic_write_json

DRAFT_NAME = "draft.json"
SCHEMA = 1
TOKEN = re.compile(r"\w+(?:[-'’]\w+)*", re.UNICODE)

Span = tuple[int, int]


def tokens_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """Word tokens, case-folded, with their character offsets in ``text``."""
    return [(m.group().casefold(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def _word_tokens(words: Sequence[dict[str, Any]]) -> tuple[list[str], list[int]]:
    """Tokens of each word and, for each token, the index of the word it came from."""
    tokens, owners = [], []
    for index, word in enumerate(words):
        for match in TOKEN.finditer(str(word["word"])):
            tokens.append(match.group().casefold())
            owners.append(index)
    return tokens, owners


def align_words(words: Sequence[dict[str, Any]], text: str) -> list[Span | None]:
    """Map each word to the span of ``text`` it became, by aligning word tokens.

    Matching tokens map one to one; a replaced block ("seventy two" -> "72") maps all
    its words to the whole replacement; words whose tokens vanished map to ``None``.
    """
    source, owners = _word_tokens(words)
    target = tokens_with_offsets(text)
    spans: list[Span | None] = [None] * len(words)
    matcher = SequenceMatcher(None, source, [t[0] for t in target], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "delete" or j1 == j2:
            continue
        block = (target[j1][1], target[j2 - 1][2])
        for i in range(i1, i2):
            span = (target[j1 + i - i1][1], target[j1 + i - i1][2]) if tag == "equal" else block
            owner = owners[i]
            current = spans[owner]
            spans[owner] = (
                span if current is None else (min(current[0], span[0]), max(current[1], span[1]))
            )
    return spans


def whisper_words(transcript: dict[str, Any]) -> list[dict[str, Any]]:
    """Whisper's words, flattened across segments, with their segment index."""
    return [
        {**word, "segment": segment["id"]}
        for segment in transcript.get("segments", [])
        for word in segment.get("words", [])
    ]


def new_draft(
    job_id: str,
    language: str | None,
    text: str,
    words: list[dict[str, Any]],
    fields: dict[str, str],
    postprocessing: dict[str, Any],
    *,
    warnings: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """The first draft, as the transcription stage leaves it for review.

    ``unreliable`` lists the passages Whisper could not transcribe reliably (words
    marked ``unreliable``), each ``checked`` once the secretary has looked at it:
    approval waits for every one.
    """
    draft = {
        "schema": SCHEMA,
        "job_id": job_id,
        "language": language,
        "text": text,
        "words": words,
        "fields": fields,
        "cursor": 0,
        "postprocessing": postprocessing,
        "warnings": list(warnings),
        "unreliable": unreliable_passages(words),
        "updated_at": time.time(),
    }
    return with_text(draft, text)


def unreliable_passages(words: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of words marked unreliable (word indexes, end exclusive); each unchecked."""
    passages: list[dict[str, Any]] = []
    for index, word in enumerate(words):
        kind = word.get("unreliable")
        if not kind:
            continue
        if passages and passages[-1]["words"][1] == index and passages[-1]["kind"] == kind:
            passages[-1]["words"][1] = index + 1
        else:
            passages.append(
                {"id": len(passages), "kind": kind, "words": [index, index + 1], "checked": False}
            )
    return passages


def unchecked_passages(draft: dict[str, Any]) -> list[dict[str, Any]]:
    """Unreliable passages the secretary has not looked at yet."""
    return [p for p in draft.get("unreliable", ()) if not p.get("checked")]


def passage_span(draft: dict[str, Any], passage: dict[str, Any]) -> Span | None:
    """The draft text a passage became (its words' spans joined), or None if deleted."""
    first, last = passage["words"]
    spans = [w["span"] for w in draft["words"][first:last] if w.get("span")]
    if not spans:
        return None
    return (min(s[0] for s in spans), max(s[1] for s in spans))


def with_text(draft: dict[str, Any], text: str) -> dict[str, Any]:
    """A copy of the draft holding ``text``, its word spans recomputed."""
    spans = align_words(draft["words"], text)
    words = [
        {**word, "span": list(span) if span else None}
        for word, span in zip(draft["words"], spans, strict=True)
    ]
    return {**draft, "text": text, "words": words, "updated_at": time.time()}


def apply_edit(draft: dict[str, Any], start: int, end: int, replacement: str) -> dict[str, Any]:
    """A copy of the draft with ``text[start:end]`` replaced; the Whisper words the edit
    covers become ``checked`` (the secretary has dealt with them: no longer doubtful).

    The one place an edit is made, so that the local review loop and a remote one (the
    service applying a client's edits) give the same draft for the same keys.
    """
    text = str(draft["text"])
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"bad range {start}..{end}")
    covered = {
        index
        for index, word in enumerate(draft["words"])
        if word.get("span") and word["span"][0] < max(end, start + 1) and word["span"][1] > start
    }
    edited = with_text(draft, text[:start] + replacement + text[end:])
    edited["words"] = [
        {**word, "checked": True} if index in covered else word
        for index, word in enumerate(edited["words"])
    ]
    return edited


def save_draft(path: Path, draft: dict[str, Any]) -> None:
    atomic_write_json(path, draft)


def load_draft(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
