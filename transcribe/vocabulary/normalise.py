"""Text keys for fuzzy matching: spelling-blind and sound-alike comparisons.

Whisper's misses on rare terms are mostly phonetic spellings ("bisoprolole",
"furo semide", "by so prolol"), so matching compares two keys of a phrase:

* ``compact_key``: lower case, accents and punctuation removed, spaces removed,
  so a term split into several words still matches the term;
* ``phonetic_key``: the compact key rewritten by a few French/English sound
  rules (ph->f, c before e/i->s, silent h, doubled letters, final silent e...).

This is deliberately small and predictable rather than a full phonetic
algorithm: both sides go through the same rules, so consistency is what counts.
"""

from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss"})

# Applied in order to the compact key. Multi-letter rules come first; 'x' is
# spelled out before 'ch' becomes 'x' so the two sounds stay apart.
_COMMON_RULES: tuple[tuple[str, str], ...] = (
    (r"x", "ks"),
    (r"sch", "x"),
    (r"ch", "x"),
    (r"ph", "f"),
    (r"th", "t"),
    (r"rh", "r"),
    (r"gh", "g"),
    (r"ck", "k"),
    (r"qu", "k"),
    (r"q", "k"),
    (r"c(?=[eiy])", "s"),
    (r"c", "k"),
    (r"z", "s"),
    (r"y", "i"),
    (r"w", "v"),
    (r"g(?=[ei])", "j"),
    (r"h", ""),
)
_FRENCH_RULES: tuple[tuple[str, str], ...] = (
    (r"eau", "o"),
    (r"au", "o"),
    (r"ai|ei", "e"),
    (r"en(?=[^aeiou]|$)", "an"),
    (r"em(?=[bp])", "an"),
    (r"am(?=[bp])", "an"),
    (r"ou", "u"),
    (r"gu(?=[ei])", "g"),
    (r"(?<=[aeiou])s(?=[aeiou])", "z"),
)
_ENGLISH_RULES: tuple[tuple[str, str], ...] = (
    (r"ee|ea", "i"),
    (r"oo", "u"),
    (r"ou", "u"),
)
_DOUBLED = re.compile(r"(.)\1+")


def strip_accents(text: str) -> str:
    """Remove diacritics: Whisper and dictating doctors are inconsistent with them."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalise_words(text: str) -> list[str]:
    """Lower-case, accent-free alphanumeric words of ``text``."""
    plain = strip_accents(text.casefold().translate(_LIGATURES))
    return [word for word in _NON_ALNUM.split(plain) if word]


def compact_key(text: str) -> str:
    """Spelling key: all words joined, so "furo semide" meets "furosémide"."""
    return "".join(normalise_words(text))


_DIGRAPHS = re.compile(r"(?<=[a-z])[ao]e|^oe")


def variant_key(text: str) -> str:
    """Spelling key blind to British/American digraphs: "anaesthesia" = "anesthesia".

    Whisper writes American spellings ("hemorrhage", "esophagus", "anesthesia");
    the lexicon says which spelling a letter must use.
    """
    return _DIGRAPHS.sub("e", compact_key(text))


def phonetic_key(text: str, lang: str) -> str:
    """Sound-alike key for French or English; any other language uses English rules."""
    key = compact_key(text)
    rules = _FRENCH_RULES if lang == "fr" else _ENGLISH_RULES
    for pattern, replacement in (*rules, *_COMMON_RULES):
        key = re.sub(pattern, replacement, key)
    key = _DOUBLED.sub(r"\1", key)
    return _drop_silent_ending(key, lang)


def _drop_silent_ending(key: str, lang: str) -> str:
    """Final 'e' is silent in both languages; French also drops s/t/d/x after it."""
    if lang == "fr":
        key = re.sub(r"(?<=.{3})[stdx]$", "", key)
    return re.sub(r"(?<=.{3})e$", "", key)
