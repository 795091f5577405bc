"""Split Whisper's text into words and punctuation, and attach word timings.

Whisper glues its own punctuation to words ("Virgule,") and may or may not print
hyphens and elisions ("point-virgule", "d'interrogation"). An amount grouped with
no-break spaces ("1 500 €") is one word, so no line break splits it. We keep its
punctuation as separate tokens so the command finder can tell Whisper's marks from
spoken ones, and keep the original spacing so text we do not touch stays as is.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from transcribe.dictation.commands import key_parts
from transcribe.dictation.options import TimedWordLike

NBSP = "\u00a0"  # what Word inserts before "?" and inside « », and between thousands


class Kind(StrEnum):
    WORD = "word"
    PUNCT = "punct"
    BREAK = "break"


@dataclass(frozen=True)
class Token:
    """A word, a punctuation mark or a line break from the input.

    ``space_before`` records the input's spacing (so "5%" stays glued);
    ``start``/``end`` are seconds when word timings were given and aligned.
    """

    kind: Kind
    text: str
    space_before: bool = True
    start: float | None = None
    end: float | None = None

    @property
    def keys(self) -> list[str]:
        return key_parts(self.text) if self.kind is Kind.WORD else []

    @property
    def first_key(self) -> str:
        keys = self.keys
        return keys[0] if keys else ""

    @property
    def last_key(self) -> str:
        keys = self.keys
        return keys[-1] if keys else ""


_TOKEN_RE = re.compile(
    r"""
    (?P<brk>\n[^\S\n]*\n\s*|\n)
    |(?P<word>(?:\d{1,3}(?:\u00a0\d{3})+|\d+)(?:,\d+)?\u00a0€|\d{1,3}(?:\u00a0\d{3})+(?:,\d+)?
        |\d+(?:[.,:/]\d+)+|[\w°µ%]+(?:[-'’/][\w°µ%]+)*)
    |(?P<punct>\.{3}|[.,;:?!…()\[\]«»"“”—–-])
    |(?P<other>\S)
    """,
    re.VERBOSE,
)

# Sentence-internal and final marks Whisper adds by itself; quotes and
# parentheses are not "its punctuation" in that sense and are kept.
WHISPER_MARKS = frozenset(".,;:?!…-–—") | {"..."}
SENTENCE_MARKS = frozenset(".?!…") | {"..."}


def tokenize(text: str) -> list[Token]:
    """Words, punctuation and breaks of ``text`` with their original spacing."""
    tokens: list[Token] = []
    last_end = 0
    for match in _TOKEN_RE.finditer(text):
        kind_name = match.lastgroup
        space = match.start() > last_end
        last_end = match.end()
        if kind_name == "brk":
            tokens.append(Token(Kind.BREAK, "\n\n" if match.group().count("\n") > 1 else "\n"))
        elif kind_name == "punct":
            tokens.append(Token(Kind.PUNCT, match.group(), space))
        else:
            tokens.append(Token(Kind.WORD, match.group(), space))
    return tokens


def _match_key(token: Token) -> str:
    return "".join(token.keys).replace("'", "")


def attach_timings(tokens: list[Token], words: Sequence[TimedWordLike]) -> list[Token]:
    """Give each text word the times of the Whisper word it came from.

    The text may have been edited after transcription, so words are aligned by
    content (difflib), not by position; words that do not align get no times and
    simply give no pause evidence.
    """
    timed: list[tuple[str, float, float]] = []
    for word in words:
        for token in tokenize(word.word):
            if token.kind is Kind.WORD:
                timed.append((_match_key(token), float(word.start), float(word.end)))
    positions = [i for i, t in enumerate(tokens) if t.kind is Kind.WORD]
    keys = [_match_key(tokens[i]) for i in positions]
    matcher = difflib.SequenceMatcher(None, keys, [t[0] for t in timed], autojunk=False)
    out = list(tokens)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            _, start, end = timed[block.b + offset]
            index = positions[block.a + offset]
            out[index] = replace(out[index], start=start, end=end)
    return out


def join_tokens(tokens: Sequence[Token]) -> str:
    """Text back from tokens with their spacing (for the number pass)."""
    parts: list[str] = []
    for i, token in enumerate(tokens):
        if i and token.space_before:
            parts.append(" ")
        parts.append(token.text)
    return "".join(parts)
