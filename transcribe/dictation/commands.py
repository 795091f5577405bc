"""The spoken-command lexicon: what a doctor or lawyer says, what the secretary types.

Each command is a phrase (as Whisper spells it, lower-cased) and the marks it stands
for. Words such as "point", "deux points", "period" or "colon" are also ordinary
words, so every phrase carries the context that makes it *text* rather than a
command (the words that may precede or follow it). The lexicon is data, built once
and never mutated; client options only filter it or add phrases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Action(StrEnum):
    """One written mark a command produces; names are what clients switch off."""

    COMMA = "comma"
    PERIOD = "period"
    COLON = "colon"
    SEMICOLON = "semicolon"
    QUESTION = "question"
    EXCLAMATION = "exclamation"
    ELLIPSIS = "ellipsis"
    NEW_LINE = "new_line"
    NEW_PARAGRAPH = "new_paragraph"
    OPEN_PAREN = "open_parenthesis"
    CLOSE_PAREN = "close_parenthesis"
    OPEN_QUOTE = "open_quote"
    CLOSE_QUOTE = "close_quote"
    DASH = "dash"
    HYPHEN = "hyphen"


#: Group names a client may use in ``DictationOptions.disabled``.
GROUPS: Mapping[str, frozenset[Action]] = MappingProxyType(
    {
        "punctuation": frozenset(
            {
                Action.COMMA,
                Action.PERIOD,
                Action.COLON,
                Action.SEMICOLON,
                Action.QUESTION,
                Action.EXCLAMATION,
                Action.ELLIPSIS,
            }
        ),
        "layout": frozenset({Action.NEW_LINE, Action.NEW_PARAGRAPH}),
        "parentheses": frozenset({Action.OPEN_PAREN, Action.CLOSE_PAREN}),
        "quotes": frozenset({Action.OPEN_QUOTE, Action.CLOSE_QUOTE}),
        "dashes": frozenset({Action.DASH, Action.HYPHEN}),
    }
)

#: Commands that end a sentence: the next word takes a capital.
SENTENCE_END = frozenset({Action.PERIOD, Action.QUESTION, Action.EXCLAMATION})
BREAKS = frozenset({Action.NEW_LINE, Action.NEW_PARAGRAPH})
#: Commands that make no sense at the very end of a dictation.
NEEDS_FOLLOWING = frozenset({Action.COLON, Action.OPEN_PAREN, Action.OPEN_QUOTE, Action.HYPHEN})


@dataclass(frozen=True)
class Command:
    """A spoken phrase and what it writes.

    ``literal`` is set for client-defined commands (free text); otherwise
    ``actions`` lists the marks. ``ambiguous`` phrases are common words too and
    need positive evidence; ``prev_veto``/``next_veto`` are the neighbouring words
    that make the phrase ordinary text ("à ce point de vue", "colon cancer").
    ``prev_adjectives`` make it a noun only when they open a noun phrase ("le
    dernier point", but not "le mois dernier point"). ``joins_numbers`` phrases
    belong to the number when spoken between two numbers ("deux virgule cinq" is
    2,5; "mille deux cent trente-quatre tiret cinq" is the reference 1234-5).
    """

    phrase: tuple[str, ...]
    actions: tuple[Action, ...] = ()
    literal: str | None = None
    ambiguous: bool = False
    prev_veto: frozenset[str] = field(default_factory=frozenset)
    next_veto: frozenset[str] = field(default_factory=frozenset)
    prev_adjectives: frozenset[str] = field(default_factory=frozenset)
    joins_numbers: bool = False

    @property
    def name(self) -> str:
        """The phrase as one string, for messages and option matching."""
        return " ".join(self.phrase)


_PART_RE = re.compile(r"[^-']+'?")


def key_parts(word: str) -> list[str]:
    """Split a word into matching keys: lower case, hyphens and elisions apart.

    "Point-virgule" and "point virgule", "d'interrogation" and "d' interrogation"
    must match the same phrase whichever way Whisper joined them.
    """
    return _PART_RE.findall(word.lower().replace("’", "'"))


def phrase_keys(phrase: str) -> tuple[str, ...]:
    """The keys of a whole phrase, as :func:`key_parts` splits each word."""
    return tuple(part for word in phrase.split() for part in key_parts(word))


def word_set(text: str) -> frozenset[str]:
    """A set of words written as one space-separated string (easier to read and edit)."""
    return frozenset(text.split())


# Words before a phrase that make it a noun, not a command ("un point", "the colon").
FR_DETERMINERS = word_set(
    "le la les l' un une des du au aux ce cet cette ces mon ma mes ton ta tes son sa ses "
    "notre votre nos vos leur leurs quel quelle chaque aucun aucune"
)
EN_DETERMINERS = word_set(
    "a an the this that these those each every any another his her its their our your my"
)
FR_PREPOSITIONS = word_set("à de d' en sur par pour dans avec sans sous chez entre vers")

# Words before an adjective that make "adjective + phrase" a noun phrase: "le
# dernier point", "sur ce seul point", "en tout point". After any other word the
# adjective is postposed or an attribute ("du mois dernier point", "c'est bon point").
NOUN_PHRASE_OPENERS: Mapping[str, frozenset[str]] = MappingProxyType(
    {"fr": FR_DETERMINERS | FR_PREPOSITIONS | word_set("très plus"), "en": EN_DETERMINERS}
)

# Words that typically open a sentence: after an ambiguous full stop ("period",
# "point") they are evidence that the speaker ended the sentence there.
SENTENCE_STARTERS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "fr": word_set("je j' il elle ils elles nous on le la les cette ce ces son sa ses notre"),
        "en": word_set(
            "i we he she they it you our this these there his her their its my your please the"
        ),
    }
)

_FR_NOUN_NEXT = word_set("de d' du des")
_FR_POINT_PREV = word_set("à")
_FR_POINT_ADJECTIVES = word_set(
    "bon mauvais premier dernier seul même tout second deuxième troisième nouveau"
)
_FR_POINT_NEXT = _FR_NOUN_NEXT | word_set(
    "sur important importante essentiel commun noir fort faible culminant précis particulier "
    "central crucial clé capital positif négatif technique juridique médical litigieux suivant"
)
_FR_COLON_PREV = word_set(
    "de d' avec en à sur par pour sans et ou les des ces aux perdu gagné marqué"
)
_FR_COLON_NEXT = _FR_NOUN_NEXT | word_set("sur supplémentaires importants essentiels communs")
_FR_LINE_NEXT = _FR_NOUN_NEXT | word_set(
    "médiane axillaire médio-claviculaire médioclaviculaire blanche pectinée âpre suivante "
    "précédente thérapeutique budgétaire"
)
_EN_PERIOD_PREV = word_set(
    "trial waiting grace notice postoperative post-operative perioperative recovery washout "
    "menstrual refractory incubation latent short long brief whole entire prolonged extended "
    "observation initial probationary reporting follow-up neonatal postpartum perinatal "
    "induction maintenance treatment review consultation transition transitional cooling-off "
    "cooling time holiday rest reference accounting tax fiscal last first second third given "
    "specified stated agreed minimum maximum relevant limitation same school study"
)
_EN_PERIOD_NEXT = word_set("of between from during following prior when")
_EN_COLON_PREV = word_set(
    "sigmoid transverse ascending descending right left distal proximal entire whole spastic "
    "irritable redundant normal of in into through throughout within and hepatic splenic "
    "dilated perforated inflamed affected remaining residual"
)
_EN_COLON_NEXT = word_set(
    "cancer cancers carcinoma carcinomas polyp polyps polyposis resection wall mucosa mucosal "
    "tumour tumor tumours tumors lesion lesions biopsy biopsies and or was is were are "
    "appeared appears showed shows screening neoplasm adenocarcinoma transit surgery segment "
    "with without cleansing preparation prep involvement perforation obstruction ischemia "
    "ischaemia dilatation dilation volvulus"
)

A = Action


def _cmd(
    phrase: str,
    *actions: Action,
    amb: bool = False,
    prev: frozenset[str] = frozenset(),
    nxt: frozenset[str] = frozenset(),
    adj: frozenset[str] = frozenset(),
    joins_numbers: bool = False,
) -> Command:
    return Command(phrase_keys(phrase), tuple(actions), None, amb, prev, nxt, adj, joins_numbers)


def _verbs(verbs: str, objects: tuple[str, ...], action: Action) -> list[Command]:
    return [_cmd(f"{verb} {obj}", action) for verb in verbs.split() for obj in objects]


def _french() -> tuple[Command, ...]:
    """French dictation commands, as secretariats teach doctors to say them."""
    paren, quote = (
        ("la parenthèse", "parenthèse", "une parenthèse"),
        ("les guillemets", "guillemets"),
    )
    return (
        _cmd(
            "point",
            A.PERIOD,
            amb=True,
            prev=_FR_POINT_PREV,
            nxt=_FR_POINT_NEXT,
            adj=_FR_POINT_ADJECTIVES,
        ),
        _cmd("point final", A.PERIOD),
        _cmd("point à la ligne", A.PERIOD, A.NEW_LINE),
        _cmd("point retour à la ligne", A.PERIOD, A.NEW_LINE),
        _cmd("virgule", A.COMMA, joins_numbers=True),
        _cmd("deux points", A.COLON, amb=True, prev=_FR_COLON_PREV, nxt=_FR_COLON_NEXT),
        _cmd("2 points", A.COLON, amb=True, prev=_FR_COLON_PREV, nxt=_FR_COLON_NEXT),
        _cmd("point-virgule", A.SEMICOLON),
        _cmd("point d'interrogation", A.QUESTION),
        _cmd("point d'exclamation", A.EXCLAMATION),
        _cmd("points de suspension", A.ELLIPSIS),
        _cmd("à la ligne", A.NEW_LINE, nxt=_FR_LINE_NEXT),
        _cmd("retour à la ligne", A.NEW_LINE, nxt=_FR_LINE_NEXT),
        _cmd("nouvelle ligne", A.NEW_LINE, nxt=_FR_LINE_NEXT),
        _cmd("nouveau paragraphe", A.NEW_PARAGRAPH, nxt=_FR_NOUN_NEXT),
        _cmd("nouvel alinéa", A.NEW_PARAGRAPH, nxt=_FR_NOUN_NEXT),
        *_verbs("ouvrez ouvrir ouvre ouvrons", paren, A.OPEN_PAREN),
        *_verbs("fermez fermer ferme fermons", paren, A.CLOSE_PAREN),
        _cmd("parenthèse ouvrante", A.OPEN_PAREN),
        _cmd("parenthèse fermante", A.CLOSE_PAREN),
        *_verbs("ouvrez ouvrir ouvre ouvrons", quote, A.OPEN_QUOTE),
        *_verbs("fermez fermer ferme fermons", quote, A.CLOSE_QUOTE),
        _cmd("fin des guillemets", A.CLOSE_QUOTE),
        _cmd("fin de citation", A.CLOSE_QUOTE),
        _cmd("tiret", A.DASH, joins_numbers=True),
        _cmd("trait d'union", A.HYPHEN),
    )


def _english() -> tuple[Command, ...]:
    """English dictation commands (UK and US names)."""
    paren = ("parenthesis", "parentheses", "paren", "bracket", "brackets")
    quote = ("quote", "quotes", "quotation marks", "inverted commas")
    return (
        _cmd("period", A.PERIOD, amb=True, prev=_EN_PERIOD_PREV, nxt=_EN_PERIOD_NEXT),
        _cmd("full stop", A.PERIOD, amb=True, nxt=word_set("of to in")),
        _cmd("comma", A.COMMA, joins_numbers=True),
        _cmd("colon", A.COLON, amb=True, prev=_EN_COLON_PREV, nxt=_EN_COLON_NEXT),
        _cmd("semicolon", A.SEMICOLON),
        _cmd("semi colon", A.SEMICOLON),
        _cmd("question mark", A.QUESTION),
        _cmd("exclamation mark", A.EXCLAMATION),
        _cmd("exclamation point", A.EXCLAMATION),
        _cmd("ellipsis", A.ELLIPSIS),
        _cmd("dot dot dot", A.ELLIPSIS),
        _cmd("new line", A.NEW_LINE, nxt=word_set("of")),
        _cmd("next line", A.NEW_LINE, nxt=word_set("of")),
        _cmd("newline", A.NEW_LINE),
        _cmd("new paragraph", A.NEW_PARAGRAPH, nxt=word_set("of")),
        _cmd("next paragraph", A.NEW_PARAGRAPH, nxt=word_set("of")),
        *_verbs("open", paren, A.OPEN_PAREN),
        *_verbs("close end", paren, A.CLOSE_PAREN),
        *_verbs("open begin", quote, A.OPEN_QUOTE),
        *_verbs("close end", quote, A.CLOSE_QUOTE),
        _cmd("unquote", A.CLOSE_QUOTE),
        _cmd("end of quote", A.CLOSE_QUOTE),
        _cmd("dash", A.DASH, amb=True, nxt=word_set("of")),
        _cmd("hyphen", A.HYPHEN),
    )


LEXICON: Mapping[str, tuple[Command, ...]] = MappingProxyType({"fr": _french(), "en": _english()})
DETERMINERS: Mapping[str, frozenset[str]] = MappingProxyType(
    {"fr": FR_DETERMINERS, "en": EN_DETERMINERS}
)


def known_phrases() -> frozenset[tuple[str, ...]]:
    """The keys of every built-in phrase in every language, to validate client options."""
    return frozenset(cmd.phrase for cmds in LEXICON.values() for cmd in cmds)
