"""Whisper's runaway text: loops, doubled sentences and echoed prompts.

A decoder conditioned on a prompt of vocabulary terms can fall into two traps that
its own safeguards miss: it repeats itself ("périndopril, périndopril, périndopril",
a sentence written twice), or it writes the prompt back ("Compte rendu médical.
Vocabulaire : bisoprolol, ramipril, atorvastatine") instead of what was said.
faster-whisper only notices the first when the text becomes very compressible
(``compression_ratio_threshold`` 2.4), which a 30-second window of ordinary speech
with one doubled sentence never reaches. Each window of each pass is checked here;
what is found is decoded again without the prompt (:mod:`transcribe.asr.passes`),
and what is still wrong is marked unreliable for the secretary.

The third trap is at the end of a file: Whisper fills the last half-second by
writing the dictation again, or words aligned to no audio at all;
:func:`drop_hallucinations` cuts those.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..vocabulary.normalise import normalise_words

# Whisper's own threshold: above it, a text repeats itself (faster-whisper default).
MAX_COMPRESSION_RATIO = 2.4
# A word or pair of words three times running, a phrase of three or more words twice
# running: speech does not do that, a looping decoder does.
SHORT_PHRASE_WORDS = 2
SHORT_PHRASE_REPEATS = 3
LONG_PHRASE_REPEATS = 2
MAX_PHRASE_WORDS = 12
COPY_MIN_WORDS = 5  # a closing stretch this long, written earlier, was written again
# Three prompt terms in a row, in the prompt's own order, is the prompt read back.
ECHO_RUN = 3
ECHO_GAP = 2  # consecutive in the prompt, or one term skipped


@dataclass(frozen=True)
class Runaway:
    """Why a decoding cannot be trusted, and where (word indexes, end exclusive)."""

    kind: str  # "repeat", "echo", "compression"
    text: str
    start: int
    end: int
    once: int = 0  # a repeat: where its first copy ends
    closing: bool = False  # nothing after it but punctuation or the start of one more copy

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "text": self.text}


def compression_ratio(text: str) -> float:
    """faster-whisper's measure: bytes over zlib-compressed bytes."""
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def find_runaway(
    words: Sequence[str], text: str, prompt_terms: Sequence[str] = (), lead_in: str = ""
) -> Runaway | None:
    """The first sign that a window's text ran away, or None.

    ``words`` are the window's words as Whisper wrote them; ``prompt_terms`` the terms
    of the prompt it was decoded with, in the prompt's order; ``lead_in`` the prompt's
    opening sentence ("Compte rendu médical. Vocabulaire :").
    """
    keys = [" ".join(normalise_words(word)) for word in words]
    while keys and not keys[-1]:
        keys.pop()  # a closing bare punctuation mark is no word
    found = _repeat(keys) or _echo(keys, prompt_terms, lead_in) or _compressible(text, len(keys))
    return replace(found, closing=_closes(found, keys)) if found else None


def _closes(found: Runaway, keys: Sequence[str]) -> bool:
    """Whether the runaway ends the text: nothing after it, or (a repeat) the beginning
    of one more copy ("... analgesic period. She showed ... analgesic period."),
    where the decoder's length cap stopped it mid-phrase."""
    after = [k for k in keys[found.end :] if k]
    if found.kind != "repeat":
        return not after
    phrase = found.text.split()
    return after == phrase[: len(after)]


def closing_copy(words: Sequence[str], min_words: int = COPY_MIN_WORDS) -> int | None:
    """Where a closing stretch that copies an earlier one begins (a word index), or None.

    Prompted, Whisper that has reached the end of the speech sometimes goes back and
    writes an earlier stretch again ("... liquidated damages. The doctrine of
    frustration is unlikely to apply ..."): not back to back, so no repeat, but
    nothing new either. The copy is at least ``min_words`` words, punctuation ignored;
    the longest such closing stretch is the one found.
    """
    keys = [" ".join(normalise_words(word)) for word in words]
    index = [i for i, k in enumerate(keys) if k]
    tokens = [keys[i] for i in index]
    longest = 0
    for size in range(min_words, len(tokens) // 2 + 1):
        tail = tokens[len(tokens) - size :]
        earlier = tokens[: len(tokens) - size]
        if not any(earlier[i : i + size] == tail for i in range(len(earlier) - size + 1)):
            break  # a longer closing stretch holds this one: it cannot be a copy either
        longest = size
    if not longest:
        return None
    start = len(tokens) - longest
    # "... a notice period. The doctrine ...": the full stop ends the sentence before
    while longest > min_words and _SENTENCE_END.search(words[index[start]].rstrip()[-1:]):
        start, longest = start + 1, longest - 1
    return index[start]


def _repeat(keys: Sequence[str]) -> Runaway | None:
    """A phrase repeated back to back (punctuation ignored)."""
    tokens = [k for k in keys if k]
    index = [i for i, k in enumerate(keys) if k]
    for size in range(1, MAX_PHRASE_WORDS + 1):
        needed = SHORT_PHRASE_REPEATS if size <= SHORT_PHRASE_WORDS else LONG_PHRASE_REPEATS
        for start in range(len(tokens) - size * needed + 1):
            phrase = tokens[start : start + size]
            count = 1
            while tokens[start + count * size : start + (count + 1) * size] == phrase:
                count += 1
            if count >= needed:
                end = start + count * size
                once = index[start + size - 1] + 1
                return Runaway("repeat", " ".join(phrase), index[start], index[end - 1] + 1, once)
    return None


def _echo(keys: Sequence[str], prompt_terms: Sequence[str], lead_in: str) -> Runaway | None:
    """The prompt read back: its lead-in, or a run of its terms in its own order."""
    tokens = [k for k in keys if k]
    index = [i for i, k in enumerate(keys) if k]
    lead = normalise_words(lead_in) if lead_in else []
    for at in range(len(tokens) - len(lead) + 1 if lead else 0):
        if tokens[at : at + len(lead)] == lead:
            return Runaway("echo", lead_in, index[at], index[at + len(lead) - 1] + 1)
    order = {}
    for rank, term in enumerate(prompt_terms):
        order.setdefault(tuple(normalise_words(term)), rank)
    found = _term_positions(tokens, order)
    run: list[tuple[int, int, int]] = []
    for position in found:
        if run and position[0] == run[-1][1] and 0 < position[2] - run[-1][2] <= ECHO_GAP:
            run.append(position)
        else:
            run = [position]
        if len(run) >= ECHO_RUN:
            text = " ".join(tokens[run[0][0] : run[-1][1]])
            return Runaway("echo", text, index[run[0][0]], index[run[-1][1] - 1] + 1)
    return None


def _term_positions(
    tokens: Sequence[str], order: dict[tuple[str, ...], int]
) -> list[tuple[int, int, int]]:
    """(start, end, prompt rank) of each prompt term in the tokens, left to right."""
    sizes = sorted({len(key) for key in order if key}, reverse=True)
    found: list[tuple[int, int, int]] = []
    i = 0
    while i < len(tokens):
        for size in sizes:
            rank = order.get(tuple(tokens[i : i + size]))
            if rank is not None:
                found.append((i, i + size, rank))
                i += size
                break
        else:
            i += 1
    return found


def _compressible(text: str, count: int) -> Runaway | None:
    if compression_ratio(text.strip()) > MAX_COMPRESSION_RATIO:
        return Runaway("compression", text.strip()[:80], 0, count)
    return None


ECHO_MAX_WORDS_PER_S = 6.0  # dictation runs at 2-3 words a second
_NOT_WORD = re.compile(r"[^\w']+")
_SENTENCE_END = re.compile(r"[.!?;]+")


def drop_hallucinations(segments: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Segments minus Whisper's tail hallucinations, and the texts dropped.

    Whisper, conditioned on what it just wrote, sometimes fills the last half-second
    of a file by writing the dictation again. Such an echo says nothing new (every
    three words of it are in the two segments before it) and is spoken impossibly
    fast. Both must hold: a doctor repeating a sentence at speaking pace is kept.
    """
    kept: list[dict[str, Any]] = []
    echoes: list[str] = []
    for segment in segments:
        if kept and _is_echo(segment, kept[-2:]):
            echoes.append(segment["text"].strip())
        else:
            kept.append(segment)
    if len(kept) > 1 and _too_fast(kept[-1]):
        echoes.append(kept.pop()["text"].strip())  # "This is the last paragraph of the."
    ghost = _trailing_ghost(kept)
    if ghost:
        echoes.append(ghost)
    return kept, echoes


def _too_fast(segment: dict[str, Any]) -> bool:
    """A closing segment of at least GHOST_MIN_WORDS words at more than twice dictation
    pace: Whisper writing past the end of the speech, repeating or not."""
    words = _plain(segment["text"]).split()
    duration = max(segment["end"] - segment["start"], 0.001)
    return len(words) >= GHOST_MIN_WORDS and len(words) / duration > ECHO_MAX_WORDS_PER_S


GHOST_MIN_WORDS = 3


def _trailing_ghost(segments: list[dict[str, Any]]) -> str:
    """Cut words written after the audio ran out, and return them.

    The other tail hallucination ("This is the final paragraph of the ...") repeats
    nothing, but its words are aligned to no audio: a run of at least
    GHOST_MIN_WORDS words of zero duration closing the file.
    """
    if not segments or not segments[-1].get("words"):
        return ""
    words = segments[-1]["words"]
    cut = len(words)
    while cut and words[cut - 1]["end"] <= words[cut - 1]["start"]:
        cut -= 1
    if len(words) - cut < GHOST_MIN_WORDS:
        return ""
    ghost = "".join(w["word"] for w in words[cut:]).strip()
    if cut == 0:
        segments.pop()
    else:
        last = segments[-1]
        last["words"] = words[:cut]
        last["text"] = "".join(w["word"] for w in words[:cut])
        last["end"] = words[cut - 1]["end"]
    return ghost


def _is_echo(segment: dict[str, Any], before: list[dict[str, Any]]) -> bool:
    words = _plain(segment["text"]).split()
    duration = max(segment["end"] - segment["start"], 0.001)
    if not words or len(words) / duration <= ECHO_MAX_WORDS_PER_S:
        return False
    earlier = f" {' '.join(_plain(s['text']) for s in before)} "
    sentences = [_plain(part) for part in _SENTENCE_END.split(segment["text"])]
    if all(f" {sentence} " in earlier for sentence in sentences if sentence):
        return True  # "A. B. A." after "A. B.": each sentence said before
    size = min(3, len(words))
    grams = {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}
    return all(f" {gram} " in earlier for gram in grams)


def _plain(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())
