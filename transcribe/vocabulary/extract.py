"""Which words of an approved letter are vocabulary worth learning for its author.

An author's approved letters say which terms they really use; those terms lead the
prompt of their next dictations (:mod:`transcribe.vocabulary.authors`). What may be
learnt is narrow on purpose, because the letters are about people:

1. **lexicon terms**: a phrase of the client's shipped domain lexicon
   (``data/{medical,legal}-{fr,en}.txt``), matched whatever its case and accents;
2. **domain-shaped words** (medical clients): one lower-case word of 7 letters or
   more, not a common word, ending in a drug stem (``-olol``, ``-pril``,
   ``-sartan``, ``-mab``, ``-azole``...) or a procedure or diagnosis ending
   (``-ectomie``/``-ectomy``, ``-scopie``/``-scopy``, ``-plastie``/``-plasty``...);
3. **legal references** (legal clients): "article L. 1234-5 du code du travail",
   "section 21 of the Housing Act 1988".

Never learnt, whatever the rules above say: a phrase holding a word of any of the
letter's field values (patient, matter, recipient, author, reference...: the
fields are the authority on names); a word written with a capital in the middle of
a sentence unless the lexicon writes it so (it looks like a person's or a place's
name: "Madame Lisinoprine"); a word right after a title ("docteur", "Mme", "Mr");
numbers, dates, e-mail addresses and anything else of no rule above.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from transcribe.vocabulary.lexicon import shipped_lexicon, shipped_word_list
from transcribe.vocabulary.normalise import strip_accents

# Letters and digits, with inner hyphens and apostrophes ("anti-TNF", "Crohn's"); a
# French elided article is a word of its own ("l'", "d'"), so "l'assignation en
# référé" holds the lexicon's "assignation en référé".
_TOKEN = re.compile(r"\b(?:[cdjlmnst]|qu|jusqu|lorsqu|puisqu)['’](?=\w)|\w+(?:[-'’]\w+)*", re.I)
_SENTENCE_END = re.compile(r"[.!?…:\n]")
_MAX_PHRASE = 8
MIN_SHAPED_LETTERS = 7
_MIN_STEM_PREFIX = 3


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Drug stems of the WHO's INN naming scheme, French and English spellings (compared
# without accents). In Debian's French and English word lists only drug and
# biochemistry names end so; stems that hit everyday words are narrowed ("-vir" of
# "servir" to "-ovir", "-navir"; "-caine" of "marocaine" to "-docaine", "-vacaine").
DRUG_STEMS = (
    "olol", "pril", "prile", "sartan", "mab", "azole", "statin", "statine", "cillin",
    "cilline", "mycin", "mycine", "cycline", "floxacin", "floxacine", "parin", "parine",
    "xaban", "gatran", "gliptin", "gliptine", "gliflozin", "gliflozine", "glitazone",
    "triptan", "tinib", "ciclib", "ovir", "navir", "buvir", "previr", "mivir", "dipine",
    "thiazide", "semide", "oxetine", "triptyline", "pramine", "azepam", "zolam", "dronate",
    "setron", "lukast", "tidine", "profen", "profene", "coxib", "methasone", "solone",
    "nisone", "docaine", "procaine", "vacaine", "ticaine", "platin", "platine", "rubicin",
    "rubicine", "taxel", "terol", "tropium", "apine", "peridone", "peridol", "darone", "afil",
    "glutide", "plase",
)  # fmt: skip
# Procedure and diagnosis endings. Debian's lists hold a few everyday words with
# them, which ORDINARY_SHAPED keeps out, and rarer technical ones ("lithographie"):
# those are learnt only if an author writes them in letter after letter.
CLINICAL_ENDINGS = (
    "ectomie", "ectomy", "otomie", "otomy", "ostomie", "ostomy", "oscopie", "oscopy",
    "oplastie", "oplasty", "ographie", "ography", "ogramme", "ogram", "itis", "osis",
    "emie", "emia", "aemia", "algie", "algia", "pathie", "pathy", "plasie", "plasia",
    "cardie", "cardia", "pnee", "pnea", "pnoea", "rragie", "rrhage", "rrhagia", "megalie",
    "megaly", "ectasie", "ectasis", "penie", "penia", "cytose", "cytosis", "centese",
    "centesis", "lyse", "lysis", "pexie", "pexy", "rraphie", "rrhaphy", "tripsie", "tripsy",
)  # fmt: skip
# Everyday words with a clinical ending, from Debian's wfrench and wbritish lists.
ORDINARY_SHAPED = _word_set(
    """
    programme reprogramme deprogramme program deprogram diagram telegram kilogram
    kilogramme histogram hologram monogram parallelogram cryptogram academie ennemie
    academia sympathie antipathie apathie empathie telepathie sympathy antipathy empathy
    telepathy nostalgie nostalgia analyse catalyse paralyse analysis catalysis
    psychoanalysis dichotomie dichotomy bibliographie biographie autobiographie
    geographie photographie choregraphie cartographie demographie typographie
    calligraphie cinematographie oceanographie discographie filmographie
    lexicographie stenographie topographie orthographie bibliography biography
    autobiography geography photography choreography cartography demography
    typography calligraphy cinematography oceanography lexicography topography
    cryptography holography metamorphosis apotheosis hypnosis graffitis ouistitis
    """
)
TITLES = _word_set(
    """
    m mme mmes mlle mlles monsieur madame mademoiselle messieurs mesdames dr docteur
    docteure pr professeur professeure me maitre mr mrs ms miss mister doctor
    professor prof sir dame lord lady
    """
)
_FR_REFERENCE = r"\barticles?\s+(?:[LRDA]\.\s?)?\d+(?:-\d+)*"
_EN_REFERENCE = r"\b(?:sections?|s\.)\s+\d+[A-Z]?(?:\(\d+\))*"
_ACT = r"(?:(?!The\b)[A-Z][a-z]+\s+){1,5}Act\s+\d{4}"


@dataclass(frozen=True)
class Token:
    """One word of the letter, with what tells a name from a term."""

    text: str
    start: int
    end: int
    initial: bool  # first word of a sentence
    capital_mid_sentence: bool
    after_title: bool
    gap_before: str  # the text between the previous token and this one

    @property
    def key(self) -> str:
        return fold(self.text)


def fold(text: str) -> str:
    """Compare without case, accents or apostrophe style."""
    return strip_accents(text.casefold().replace("’", "'"))


def tokens(text: str) -> list[Token]:
    """The letter's words, each knowing whether it looks like a name.

    A sentence starts at the beginning, after ". ! ? … :" or a line break: a capital
    there says nothing. "Dr. Lisinoprine" is caught by the title, not the capital.
    """
    found: list[Token] = []
    previous_end = 0
    for match in _TOKEN.finditer(text):
        word, start = match.group(), match.start()
        gap = text[previous_end:start]
        initial = not found or bool(_SENTENCE_END.search(gap))
        after_title = bool(found) and found[-1].key in TITLES
        capital = word[0].isupper() and not initial
        found.append(Token(word, start, match.end(), initial, capital, after_title, gap))
        previous_end = match.end()
    return found


def private_keys(values: Iterable[str], lang: str) -> frozenset[str]:
    """The words of the letter's field values (names, matter, references), without
    the function words ("de", "la", "the") that would block every legal phrase."""
    common = _common(lang)
    words = (t.key for value in values for t in tokens(str(value)))
    return frozenset(w for w in words if len(w) >= 3 and w not in common)


@functools.lru_cache(maxsize=8)
def _lexicon_index(domain: str, lang: str) -> Mapping[tuple[str, ...], str]:
    """Lexicon phrases by their folded words: ("code", "civil") -> "code civil"."""
    index: dict[tuple[str, ...], str] = {}
    for entry in shipped_lexicon(domain, lang):
        key = tuple(t.key for t in tokens(entry.text))
        if key and len(key) <= _MAX_PHRASE:
            index.setdefault(key, entry.text)
    return index


@functools.lru_cache(maxsize=4)
def _common(lang: str) -> frozenset[str]:
    words = shipped_word_list("common-fr.txt" if lang == "fr" else "common-en.txt")
    return frozenset(fold(w) for w in words)


def _lexicon_matches(
    words: list[Token], domain: str, lang: str, named: frozenset[str]
) -> Iterator[str]:
    """Each longest lexicon phrase, left to right; none runs across punctuation.

    A one-word term the lexicon writes in lower case is skipped where the letter
    uses it as a name (capital mid-sentence, after a title: "Madame Audience").
    """
    index = _lexicon_index(domain, lang)
    i = 0
    while i < len(words):
        for end in range(min(len(words), i + _MAX_PHRASE), i, -1):
            span = words[i:end]
            if any(t.gap_before.strip() for t in span[1:]):
                continue
            term = index.get(tuple(t.key for t in span))
            if term is None:
                continue
            if not (end - i == 1 and span[0].key in named and term[0].islower()):
                yield _spelling(span, term)
            i = end - 1
            break
        i += 1


def _spelling(span: list[Token], term: str) -> str:
    """The letter's spelling when it differs from the lexicon's only by case ("Code
    civil"), else the lexicon's (it restores a missing accent). A capital that only
    starts a sentence is not the term's ("Amiodarone débutée.")."""
    first = span[0].text
    if span[0].initial and term[0].islower():
        first = first[0].lower() + first[1:]
    pieces = [first, *(" " * bool(t.gap_before) + t.text for t in span[1:])]
    written = "".join(pieces).replace("’", "'")
    return written if written.casefold() == term.casefold() else term


def _shaped(token: Token, lang: str) -> bool:
    """A rare, lower-case word with a drug stem or a clinical ending."""
    plain = fold(token.text)
    if token.text[0].isupper() or len(plain) < MIN_SHAPED_LETTERS:
        return False
    if not plain.replace("-", "").isalpha() or plain in _common(lang):
        return False
    if plain in ORDINARY_SHAPED:
        return False
    return any(
        plain.endswith(end) and len(plain) - len(end) >= _MIN_STEM_PREFIX
        for end in (*DRUG_STEMS, *CLINICAL_ENDINGS)
    )


@functools.lru_cache(maxsize=4)
def _reference_pattern(lang: str) -> re.Pattern[str]:
    """Article references, with the code they belong to when the lexicon knows it."""
    if lang == "fr":
        lexicon = shipped_lexicon("legal", "fr")
        codes = [e.text for e in lexicon if fold(e.text).startswith("code ")]
        code = "|".join(re.escape(c) for c in sorted(codes, key=len, reverse=True))
        return re.compile(rf"{_FR_REFERENCE}(?:\s+(?:du|de\s+la|des)\s+(?i:{code}))?")
    return re.compile(rf"{_EN_REFERENCE}(?:\s+of\s+the\s+{_ACT})?|\b{_ACT}")


def _references(text: str, lang: str) -> Iterator[str]:
    for match in _reference_pattern(lang).finditer(text):
        yield " ".join(match.group().split())


def extract_terms(text: str, *, domain: str, lang: str, private: Iterable[str] = ()) -> list[str]:
    """The learnable terms of one approved letter, each once, in order of appearance.

    ``private`` holds the letter's field values and its author: no term sharing a
    word with them is ever returned, even a lexicon term or a drug-shaped word.
    """
    if domain not in ("medical", "legal") or lang not in ("fr", "en"):
        return []
    words = tokens(text)
    named = frozenset(t.key for t in words if t.capital_mid_sentence or t.after_title)
    found = list(_lexicon_matches(words, domain, lang, named))
    if domain == "medical":
        found += [t.text for t in words if t.key not in named and _shaped(t, lang)]
    else:
        found += list(_references(text, lang))
    blocked = private_keys(private, lang)
    return _unique(t for t in found if not blocked & {w.key for w in tokens(t)})


def _unique(terms: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for term in terms:
        seen.setdefault(fold(term), term)
    return list(seen.values())
