"""Find spoken commands in the token stream, and only where they are commands.

A phrase from the lexicon is a command when the evidence says so. Evidence is
scored, so that several weak hints can outweigh one: Whisper's own punctuation
around the phrase (it hears the speaker stop), the end of the dictation, another
command right after, and, when word timings are given, real pauses. Against it:
a determiner before ("un point", "the colon"), a word after that makes it a noun
phrase ("point de vue", "colon cancer"), a number on both sides of "virgule"
(a French decimal), nothing after a colon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from transcribe.dictation.commands import (
    BREAKS,
    DETERMINERS,
    LEXICON,
    NEEDS_FOLLOWING,
    NOUN_PHRASE_OPENERS,
    SENTENCE_END,
    SENTENCE_STARTERS,
    Command,
    phrase_keys,
)
from transcribe.dictation.french import DIGIT_PREV, SIGNS
from transcribe.dictation.numbers import is_number
from transcribe.dictation.options import DictationOptions
from transcribe.dictation.tokens import SENTENCE_MARKS, WHISPER_MARKS, Kind, Token

# Marks Whisper may put between the words of one command ("Point, à la ligne.").
_INNER_MARKS = frozenset(",.-…")
_VETO = -3.0
_WEAK_VETO = -1.0
_DETERMINER = -5.0
_PAUSE = 2.0
_BOUNDARY = 2.0
_NO_PAUSE = -1.0
_SENTENCE_START = 1.0
_HABIT = 1.0
_HABIT_MIN = 3


@dataclass(frozen=True)
class Spoken:
    """A recognised command covering tokens ``start`` to ``stop`` (exclusive)."""

    command: Command
    start: int
    stop: int

    @property
    def ends_sentence(self) -> bool:
        actions = set(self.command.actions)
        return bool(actions & (SENTENCE_END | BREAKS))


Item = Token | Spoken


@dataclass(frozen=True)
class Lexicon:
    """The commands in force for one call, indexed by first key."""

    lang: str
    by_first: dict[str, tuple[Command, ...]]
    options: DictationOptions

    @classmethod
    def build(cls, lang: str, options: DictationOptions) -> Lexicon:
        off, off_phrases = options.disabled_actions(), options.disabled_phrases()
        extra = {phrase_keys(p): out for p, out in options.extra.items()}
        commands = [
            cmd
            for cmd in LEXICON[lang]
            if cmd.phrase not in off_phrases
            and not (set(cmd.actions) & off)
            and cmd.phrase not in extra
        ]
        commands += [Command(keys, literal=out) for keys, out in extra.items()]
        if not options.commands:
            commands = [cmd for cmd in commands if cmd.literal is not None]
        index: dict[str, list[Command]] = {}
        for cmd in commands:
            index.setdefault(cmd.phrase[0], []).append(cmd)
        by_first = {k: tuple(sorted(v, key=lambda c: -len(c.phrase))) for k, v in index.items()}
        return cls(lang, by_first, options)

    def candidates(self, token: Token) -> tuple[Command, ...]:
        if token.kind is not Kind.WORD:
            return ()
        found = self.by_first.get(token.first_key, ())
        if token.text == "A" and self.lang == "fr":
            found = tuple(
                sorted((*found, *self.by_first.get("à", ())), key=lambda c: -len(c.phrase))
            )
        return found


def _same_keys(token: Token, keys: tuple[str, ...], wanted: tuple[str, ...], inside: bool) -> bool:
    """Equal keys; Whisper often drops the accent of À ("A la ligne", "point a la ligne").

    A bare "a" is the verb "avoir" too, so it stands for "à" only inside a phrase
    or capitalised at a sentence start.
    """
    if keys == wanted:
        return True
    return wanted == ("à",) and (token.text == "A" or (inside and token.text == "a"))


def match_phrase(tokens: Sequence[Token], i: int, phrase: tuple[str, ...]) -> int | None:
    """Index after the phrase if it starts at token ``i`` on whole words, else None."""
    k, j = 0, i
    while k < len(phrase):
        if j >= len(tokens):
            return None
        token = tokens[j]
        if token.kind is Kind.PUNCT and j > i and token.text in _INNER_MARKS:
            j += 1
            continue
        keys = tuple(token.keys)
        if token.kind is not Kind.WORD or not _same_keys(
            token, keys, phrase[k : k + len(keys)], k > 0
        ):
            return None
        k += len(keys)
        j += 1
    return j


def _starts_command(
    tokens: Sequence[Token], j: int, lexicon: Lexicon, *, other_than: Command | None = None
) -> bool:
    """Whether a command phrase starts at ``j`` (after one Whisper mark).

    ``other_than`` leaves out a repeat of the same phrase: in "the limitation
    period, period" only one "period" is the command, so the first must not
    count the second as evidence.
    """
    if j < len(tokens) and tokens[j].kind is Kind.PUNCT and tokens[j].text in WHISPER_MARKS:
        j += 1
    if j >= len(tokens):
        return False
    return any(
        match_phrase(tokens, j, c.phrase)
        for c in lexicon.candidates(tokens[j])
        if other_than is None or c.phrase != other_than.phrase
    )


def _gap(before: Token | None, after: Token | None) -> float | None:
    if before is None or after is None or before.end is None or after.start is None:
        return None
    return after.start - before.end


def _word_near(tokens: Sequence[Token], i: int, step: int) -> Token | None:
    while 0 <= i < len(tokens):
        if tokens[i].kind is Kind.WORD:
            return tokens[i]
        if tokens[i].kind is Kind.BREAK:
            return None
        i += step
    return None


def _timing_score(
    tokens: Sequence[Token], start: int, stop: int, cmd: Command, opts: DictationOptions
) -> float:
    """Pauses around the phrase: the speaker stopping is evidence of a command."""
    gaps = (
        _gap(_word_near(tokens, start - 1, -1), tokens[start]),
        _gap(tokens[stop - 1], _word_near(tokens, stop, 1)),
    )
    score = sum(_PAUSE for g in gaps if g is not None and g >= opts.pause_s)
    known = [g for g in gaps if g is not None]
    if cmd.ambiguous and len(known) == 2 and all(g < opts.no_pause_s for g in known):
        score += _NO_PAUSE
    return score


def _in(token: Token, words: frozenset[str], key: str) -> bool:
    """Whether a neighbour is in a word list, whole ("post-operative") or by its
    nearest part ("d'un" -> "un", "médio-claviculaire" -> "médio")."""
    return key in words or token.text.lower().replace("’", "'") in words


def _prev_score(tokens: Sequence[Token], start: int, stop: int, cmd: Command, lang: str) -> float:
    """Evidence from what precedes the phrase."""
    prev = tokens[start - 1] if start > 0 else None
    nxt = tokens[stop] if stop < len(tokens) else None
    if prev is None:
        return 0.0
    if prev.kind is Kind.PUNCT:
        return _BOUNDARY if prev.text in WHISPER_MARKS else 0.0
    if prev.kind is not Kind.WORD:
        return 0.0
    if _in(prev, DETERMINERS[lang], prev.last_key) and not _numeral(tokens, start - 1, lang):
        return _DETERMINER
    if _in(prev, cmd.prev_veto, prev.last_key):
        return _VETO
    if _in(prev, cmd.prev_adjectives, prev.last_key):
        return _adjective_veto(tokens[start - 2] if start > 1 else None, cmd, lang)
    if is_number(prev.text, lang) and (
        (cmd.joins_numbers and nxt is not None and is_number(nxt.text, lang))
        or is_number(cmd.phrase[0], lang)
    ):
        # "deux virgule cinq" is 2,5; "1234 tiret 5" a reference; "vingt deux points" a score
        return _VETO
    return 0.0


def _numeral(tokens: Sequence[Token], i: int, lang: str) -> bool:
    """French "un" after a word that takes a number is the number, not an
    article: "à J un point", "à J plus un point", "diabète de type un point"."""
    if lang != "fr" or i < 1 or tokens[i].keys != ["un"]:
        return False
    before = [t.last_key for t in tokens[max(0, i - 2) : i] if t.kind is Kind.WORD]
    if before[-1:] and before[-1] in DIGIT_PREV:
        return True
    return len(before) == 2 and before[0] == "j" and before[1] in SIGNS


def _adjective_veto(before: Token | None, cmd: Command, lang: str) -> float:
    """How much an adjective before the phrase argues for the noun.

    Opening a noun phrase ("le dernier point", "Dernier point :", "en tout
    point") it is a noun context. After any other word the adjective is postposed
    or an attribute ("du mois dernier point", "il vit seul point"): only a weak
    hint, which the end of the dictation or a new sentence outweighs.
    """
    if before is None or before.kind is not Kind.WORD:
        return _VETO
    openers = NOUN_PHRASE_OPENERS[lang] | cmd.prev_adjectives
    return _VETO if _in(before, openers, before.last_key) else _WEAK_VETO


def _next_score(tokens: Sequence[Token], stop: int, cmd: Command, lexicon: Lexicon) -> float:
    """Evidence from what follows the phrase."""
    nxt = tokens[stop] if stop < len(tokens) else None
    needs_following = bool(set(cmd.actions) & NEEDS_FOLLOWING)
    score = 1.0 if _starts_command(tokens, stop, lexicon, other_than=cmd) else 0.0
    if nxt is None or nxt.kind is Kind.BREAK:
        return score + (2 * _VETO if needs_following else _BOUNDARY)
    if _repeats(tokens, stop, cmd):
        return score  # "the limitation period, period": the mark is the command's, not this word's
    if nxt.kind is Kind.PUNCT and nxt.text in WHISPER_MARKS:
        sentence_end = nxt.text in SENTENCE_MARKS and not _starts_command(tokens, stop + 1, lexicon)
        return score + (_VETO if needs_following and sentence_end else _BOUNDARY)
    if nxt.kind is Kind.WORD and _in(nxt, cmd.next_veto, nxt.first_key):
        return score + _VETO
    if nxt.kind is Kind.WORD and set(cmd.actions) & SENTENCE_END and _starts_sentence(nxt, lexicon):
        return score + _SENTENCE_START
    return score


def _repeats(tokens: Sequence[Token], stop: int, cmd: Command) -> bool:
    """The same phrase again right after (one Whisper mark between): "period, period"."""
    j = stop + 1 if stop < len(tokens) and tokens[stop].kind is Kind.PUNCT else stop
    return (
        j < len(tokens)
        and tokens[j].kind is Kind.WORD
        and bool(match_phrase(tokens, j, cmd.phrase))
    )


def _starts_sentence(token: Token, lexicon: Lexicon) -> bool:
    """A word that typically opens a sentence ("period we discussed", "point Il a").

    Whisper's capital on a word that is not "I" counts too: it heard a new sentence.
    The noun readings ("a period of", "the notice period between") are vetoed before.
    """
    if token.text[:1].isupper() and token.text not in ("I", "A", "À"):
        return True
    return _in(token, SENTENCE_STARTERS.get(lexicon.lang, frozenset()), token.first_key)


def _context_score(
    tokens: Sequence[Token], start: int, stop: int, cmd: Command, lexicon: Lexicon
) -> float:
    """Text-only evidence for and against reading the phrase as a command."""
    score = 1.0 if cmd.ambiguous else 2.0
    score += _prev_score(tokens, start, stop, cmd, lexicon.lang)
    return score + _next_score(tokens, stop, cmd, lexicon)


def _accept(tokens: Sequence[Token], i: int, lexicon: Lexicon, habit: float) -> Spoken | None:
    for cmd in lexicon.candidates(tokens[i]):
        stop = match_phrase(tokens, i, cmd.phrase)
        if stop is None:
            continue
        score = _context_score(tokens, i, stop, cmd, lexicon)
        score += _timing_score(tokens, i, stop, cmd, lexicon.options)
        score += habit if cmd.ambiguous else 0.0
        if score > 0:
            return Spoken(cmd, i, stop)
    return None


def dictating_habit(tokens: Sequence[Token], lexicon: Lexicon) -> float:
    """Evidence that this speaker dictates punctuation at all.

    Someone whose dictation already holds ``_HABIT_MIN`` commands accepted on
    their own evidence ("comma", "new paragraph", "period." with Whisper's stop)
    means the next bare "period" or "colon" as a command too when nothing else
    decides; someone who never dictates punctuation gets no benefit of the doubt.
    Determiners and noun contexts (-3, -5) still outweigh it.
    """
    seen = sum(isinstance(item, Spoken) for item in _scan(tokens, lexicon, 0.0))
    return _HABIT if seen >= _HABIT_MIN else 0.0


def _scan(tokens: Sequence[Token], lexicon: Lexicon, habit: float) -> list[Item]:
    items: list[Item] = []
    i = 0
    while i < len(tokens):
        spoken = _accept(tokens, i, lexicon, habit) if tokens[i].kind is Kind.WORD else None
        if spoken is None:
            items.append(tokens[i])
            i += 1
        else:
            items.append(spoken)
            i = spoken.stop
    return items


def find_commands(tokens: Sequence[Token], lexicon: Lexicon) -> list[Item]:
    """Tokens with every accepted command phrase replaced by a :class:`Spoken`."""
    return _scan(tokens, lexicon, dictating_habit(tokens, lexicon))


def _is_mark(item: Item) -> bool:
    return isinstance(item, Token) and item.kind is Kind.PUNCT and item.text in WHISPER_MARKS


def _keeps_mark_before(items: Sequence[Item], i: int) -> bool:
    """Whisper's full stop before a bare "new paragraph" is the sentence's own end."""
    nxt = items[i + 1] if i + 1 < len(items) else None
    if (
        not isinstance(nxt, Spoken)
        or not set(nxt.command.actions) <= BREAKS
        or not nxt.command.actions
    ):
        return False
    token = items[i]
    prev = items[i - 1] if i else None
    return isinstance(token, Token) and token.text in SENTENCE_MARKS and isinstance(prev, Token)


def drop_whisper_marks(items: list[Item]) -> list[Item]:
    """Remove Whisper's punctuation next to a spoken command.

    Whisper hears the pause around "virgule" and prints "Virgule," or ", virgule,":
    the command says what the speaker wanted, so its neighbours' marks go.
    """
    out: list[Item] = []
    for i, item in enumerate(items):
        if _is_mark(item):
            before = next((x for x in reversed(items[:i]) if not _is_mark(x)), None)
            after = next((x for x in items[i + 1 :] if not _is_mark(x)), None)
            near = isinstance(before, Spoken) or isinstance(after, Spoken)
            if near and not (isinstance(after, Spoken) and _keeps_mark_before(items, i)):
                continue
        out.append(item)
    return out


_COMMON = frozenset(
    " ".join(
        (
            "je tu il elle nous vous ils elles on le la les un une des du de et ou mais donc car",
            "ce cette ces cet qui que en à au aux pour par sur dans avec sans ne se sa son ses",
            "leur leurs mon ma mes notre votre nos vos y est sont ont a puis ainsi également rien",
            "pas aucun aucune tout toute tous toutes ni si comme alors dont où",
            "the a an and or but he she it we they you his her their this that these those with",
            "without for of in on at to from by as is was were are has have had will would which",
            "who there then so also no not nothing all some if when where because however",
        )
    ).split()
)
_ELISIONS = ("j'", "l'", "d'", "n'", "s'", "c'", "qu'", "m'", "t'")


def lower_after_commands(items: list[Item]) -> list[Item]:
    """Undo the capital Whisper gave a word after its own full stop, when the
    spoken command there ("virgule", "tiret") does not end the sentence."""
    out = list(items)
    for i in range(1, len(out)):
        prev, item = out[i - 1], out[i]
        if not (isinstance(prev, Spoken) and isinstance(item, Token) and item.kind is Kind.WORD):
            continue
        if prev.ends_sentence or prev.command.literal is not None or not item.text[:1].isupper():
            continue
        lowered = item.text[:1].lower() + item.text[1:]
        head = lowered.lower().replace("’", "'")
        if head in _COMMON or head.startswith(_ELISIONS):
            out[i] = replace(item, text=lowered)
    return out
