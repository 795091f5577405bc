"""Lay out words and marks as a secretary types them.

Typography choices (documented because clients will ask):

* French: a no-break space (U+00A0, what Word inserts) before ``: ; ? !`` and
  inside guillemets ``« … »``; no capital after a colon.
* English: curly quotes “ ” by default (``english_quotes="straight"`` gives ");
  no space before any mark.
* "tiret"/"dash" writes a spaced hyphen-minus (`` - ``), or ``- `` at the start
  of a line (a list item); "trait d'union"/"hyphen" glues the words
  ("follow-up").
* Two marks in a row keep the stronger one ("virgule point" -> ".").
* A capital after a sentence end, a new line, a new paragraph and at the start.
* A letter's salutation ("Cher confrère,", "Dear Doctor Jones,") ends its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from transcribe.dictation.commands import Action
from transcribe.dictation.detect import Item
from transcribe.dictation.options import DictationOptions
from transcribe.dictation.tokens import NBSP, Kind, Token, tokenize


class Role(StrEnum):
    WORD = "word"
    MARK = "mark"
    OPEN = "open"
    CLOSE = "close"
    BREAK = "break"
    DASH = "dash"
    HYPHEN = "hyphen"


@dataclass(frozen=True)
class Piece:
    """One unit of output: its role decides the spacing around it."""

    role: Role
    text: str
    glue: bool = False


_RANK = {",": 1, ";": 2, ":": 2, ".": 3, "…": 3, "...": 3, "?": 4, "!": 4}
_SENTENCE_END = frozenset(".?!…") | {"..."}
_FR_SPACED = frozenset(":;?!")
_OPENERS = {"(": Role.OPEN, "[": Role.OPEN, "«": Role.OPEN, "“": Role.OPEN}
_CLOSERS = {")": Role.CLOSE, "]": Role.CLOSE, "»": Role.CLOSE, "”": Role.CLOSE}
_SALUTATIONS = frozenset({"cher", "chère", "chers", "chères", "dear"})
_EN_TITLES = frozenset({"doctor", "professor"})
_ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "prof", "pr", "m", "mme", "me", "st"})
_ACTION_PIECES = {
    Action.COMMA: Piece(Role.MARK, ","),
    Action.PERIOD: Piece(Role.MARK, "."),
    Action.COLON: Piece(Role.MARK, ":"),
    Action.SEMICOLON: Piece(Role.MARK, ";"),
    Action.QUESTION: Piece(Role.MARK, "?"),
    Action.EXCLAMATION: Piece(Role.MARK, "!"),
    Action.ELLIPSIS: Piece(Role.MARK, "…"),
    Action.NEW_LINE: Piece(Role.BREAK, "\n"),
    Action.NEW_PARAGRAPH: Piece(Role.BREAK, "\n\n"),
    Action.OPEN_PAREN: Piece(Role.OPEN, "("),
    Action.CLOSE_PAREN: Piece(Role.CLOSE, ")"),
    Action.DASH: Piece(Role.DASH, "-"),
    Action.HYPHEN: Piece(Role.HYPHEN, "-"),
}


def _quote(action: Action, lang: str, options: DictationOptions) -> Piece:
    opening = action is Action.OPEN_QUOTE
    if lang == "fr":
        text = "«" if opening else "»"
    elif options.english_quotes == "straight":
        text = '"'
    else:
        text = "“" if opening else "”"
    return Piece(Role.OPEN if opening else Role.CLOSE, text)


def _token_pieces(tokens: Sequence[Token]) -> list[Piece]:
    """Pieces for text as written (Whisper's words and marks, literal outputs)."""
    pieces: list[Piece] = []
    straight_open = False
    for token in tokens:
        if token.kind is Kind.BREAK:
            pieces.append(Piece(Role.BREAK, token.text))
        elif token.kind is Kind.WORD:
            pieces.append(Piece(Role.WORD, token.text, glue=not token.space_before))
        elif token.text == '"':
            straight_open = not straight_open
            pieces.append(Piece(Role.OPEN if straight_open else Role.CLOSE, '"'))
        elif token.text in _OPENERS or token.text in _CLOSERS:
            pieces.append(Piece(_OPENERS.get(token.text) or _CLOSERS[token.text], token.text))
        elif token.text in "-–—":
            pieces.append(Piece(Role.DASH, token.text))
        else:
            pieces.append(Piece(Role.MARK, token.text))
    return pieces


def to_pieces(items: Sequence[Item], lang: str, options: DictationOptions) -> list[Piece]:
    """Turn tokens and recognised commands into output pieces."""
    pieces: list[Piece] = []
    for item in items:
        if isinstance(item, Token):
            pieces.extend(_token_pieces([item]))
            continue
        command = item.command
        if command.literal is not None:
            literal = _token_pieces(tokenize(command.literal))
            if literal and literal[0].role is Role.WORD:
                literal[0] = Piece(Role.WORD, literal[0].text)  # spaced from what precedes
            pieces.extend(literal)
            continue
        for action in command.actions:
            if action in (Action.OPEN_QUOTE, Action.CLOSE_QUOTE):
                pieces.append(_quote(action, lang, options))
            else:
                pieces.append(_ACTION_PIECES[action])
    return pieces


def salutation_break(pieces: list[Piece]) -> list[Piece]:
    """ "Cher confrère, je vous remercie" -> the salutation gets its own line."""
    words = [i for i, p in enumerate(pieces) if p.role is Role.WORD]
    if not words or words[0] != 0 or pieces[0].text.lower() not in _SALUTATIONS:
        return pieces
    for i, piece in enumerate(pieces[:10]):
        if piece.role is Role.WORD or (piece.text == "." and _abbreviation(pieces, i)):
            continue
        nxt = pieces[i + 1] if i + 1 < len(pieces) else None
        if piece.text == "," and nxt is not None and nxt.role is Role.WORD:
            return [*pieces[: i + 1], Piece(Role.BREAK, "\n"), *pieces[i + 1 :]]
        return pieces
    return pieces


def _abbreviation(pieces: Sequence[Piece], i: int) -> bool:
    """The full stop of "Dr." or "Mme." is not the end of the salutation."""
    return (
        i > 0 and pieces[i - 1].role is Role.WORD and pieces[i - 1].text.lower() in _ABBREVIATIONS
    )


def title_case_names(pieces: list[Piece]) -> list[Piece]:
    """English "doctor Jones" -> "Doctor Jones" (French keeps "docteur Martin")."""
    out = list(pieces)
    for i, piece in enumerate(out[:-1]):
        nxt = out[i + 1]
        if piece.text in _EN_TITLES and nxt.role is Role.WORD and nxt.text[:1].isupper():
            out[i] = Piece(Role.WORD, piece.text.capitalize(), piece.glue)
    return out


class _Writer:
    """Accumulates output and the little state typing needs (capital next, last mark)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.parts: list[str] = []
        self.capital = True
        self.previous: Role | None = None
        self.last_mark: tuple[int, str] | None = None

    def line_start(self) -> bool:
        return not self.parts or self.parts[-1].endswith("\n")

    def trim(self) -> None:
        while self.parts and self.parts[-1] in (" ", NBSP):
            self.parts.pop()

    def word(self, piece: Piece) -> None:
        glued = piece.glue and self.previous is Role.WORD
        if not self.line_start() and self.previous not in (Role.OPEN, Role.HYPHEN) and not glued:
            self.parts.append(" ")
        text = piece.text
        if self.capital and text[:1].isalpha():
            text = text[:1].upper() + text[1:]
        if text[:1].isalnum():
            self.capital = False
        self.parts.append(text)

    def mark(self, piece: Piece) -> None:
        if self.previous is Role.MARK and self.last_mark is not None:
            index, old = self.last_mark
            if _RANK.get(piece.text, 0) <= _RANK.get(old, 0):
                return
            del self.parts[index:]
        self.trim()
        if self.line_start():
            return
        self.last_mark = (len(self.parts), piece.text)
        if self.lang == "fr" and piece.text in _FR_SPACED:
            self.parts.append(NBSP)
        self.parts.append(piece.text)
        if piece.text in _SENTENCE_END:
            self.capital = True

    def open(self, piece: Piece) -> None:
        if not self.line_start() and self.previous not in (Role.OPEN, Role.HYPHEN):
            self.parts.append(" ")
        self.parts.append(piece.text + (NBSP if piece.text == "«" else ""))

    def close(self, piece: Piece) -> None:
        self.trim()
        self.parts.append((NBSP if piece.text == "»" else "") + piece.text)

    def brk(self, piece: Piece) -> None:
        self.trim()
        if not self.parts:
            return
        if self.previous is Role.BREAK:
            if len(piece.text) <= len(self.parts[-1]):
                return
            self.parts.pop()
        self.parts.append(piece.text)
        self.capital = True

    def dash(self, piece: Piece) -> None:
        self.trim()
        self.parts.append(piece.text if self.line_start() else " " + piece.text)

    def hyphen(self, piece: Piece) -> None:
        self.trim()
        self.parts.append(piece.text)

    def feed(self, piece: Piece) -> None:
        handler = {
            Role.WORD: self.word,
            Role.MARK: self.mark,
            Role.OPEN: self.open,
            Role.CLOSE: self.close,
            Role.BREAK: self.brk,
            Role.DASH: self.dash,
            Role.HYPHEN: self.hyphen,
        }[piece.role]
        before = len(self.parts)
        handler(piece)
        if len(self.parts) != before or piece.role is not Role.MARK:
            self.previous = piece.role


def render(items: Sequence[Item], lang: str, options: DictationOptions) -> str:
    """The written text for tokens and commands, with typography applied."""
    pieces = to_pieces(items, lang, options)
    if options.salutation_line:
        pieces = salutation_break(pieces)
    if lang == "en":
        pieces = title_case_names(pieces)
    writer = _Writer(lang)
    for piece in pieces:
        writer.feed(piece)
    lines = "".join(writer.parts).split("\n")
    return "\n".join(line.rstrip(" " + NBSP) for line in lines).strip()
