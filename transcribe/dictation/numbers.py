"""Numbers, units and dates: "deux virgule cinq milligrammes" -> "2,5 mg".

text2num does the number parsing. We decide which words it may touch: articles
("une dyspnée", "one of them"), ordinals ("la troisième fois", "a second
opinion") and idioms ("tous les deux", "remis à neuf") stay words; so does, in
French running text, a lone number below ten ("les deux licences", "à trois
reprises"), unless what surrounds it makes it a measure, a dose, a date or a
reference (the word lists are in :mod:`.french`). Everything else that counts
something becomes digits, as a secretary types doses, ages, durations and
dates. Then units after a number are abbreviated and "140 sur 90" / "140 over
90" becomes "140/90".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache

from text_to_num import alpha2digit, text2num

from transcribe.dictation import french
from transcribe.dictation.commands import word_set
from transcribe.dictation.tokens import NBSP, Kind, Token, join_tokens, tokenize

_SENTINEL_RE = re.compile(r"zzq(\d+)qzz")
_DIGITS_RE = re.compile(r"^\d+(?:[.,]\d+)*$")
_ORDINAL_RE = re.compile(r"^\d+(?:st|nd|rd|th|er|re|ère|e|ème|nd|nde)s?$")

_ARTICLES = {"fr": frozenset({"un", "une"}), "en": frozenset({"one"})}
_AND = {"fr": "et", "en": "and"}
_DECIMAL = {"fr": "virgule", "en": "point"}
_OVER = {"fr": "sur", "en": "over"}
_PAIR_PREV = {
    "fr": frozenset({"les", "des", "ces", "nos", "vos", "leurs"}),
    "en": frozenset({"the", "both"}),
}
_ALL = {"fr": frozenset({"tous", "toutes"}), "en": frozenset({"all"})}
# Dose forms: "un comprimé" on a prescription is a quantity, typed "1 comprimé".
_DOSE_FORMS = {
    "fr": word_set(
        "comprimé comprimés gélule gélules sachet sachets goutte gouttes suppositoire "
        "suppositoires bouffée bouffées cuillère cuillères cuillerée"
    ),
    "en": word_set(
        "tablet tablets capsule capsules sachet sachets drop drops suppository puff puffs "
        "spoonful teaspoon teaspoonful tablespoon"
    ),
}
_LARGE = word_set("million millions milliard milliards")
_NEUF_PREV = frozenset({"à", "tout", "flambant", "état", "comme", "rien", "quoi"})
_FR_MONTHS = "janvier février mars avril mai juin juillet août septembre octobre novembre décembre"
_EN_MONTHS = "january february march april may june july august september october november december"
_MONTHS = {"fr": word_set(_FR_MONTHS), "en": word_set(_EN_MONTHS)}
_EN_MONTHS_RE = "|".join(m.capitalize() for m in sorted(_MONTHS["en"]))

_FR_UNITS = (
    (r"millimètres? de mercure", "mmHg"),
    (r"centimètres? d['’]eau", "cmH2O"),
    (r"kilomètres?[- ](?:par[- ])?heure", "km/h"),
    (r"milligrammes? par kilo(?:gramme)?s?", "mg/kg"),
    (r"milligrammes? par litre", "mg/l"),
    (r"grammes? par litre", "g/l"),
    (r"millimoles? par litre", "mmol/l"),
    (r"grammes? par décilitre", "g/dl"),
    (r"milligrammes? par décilitre", "mg/dl"),
    (r"micromoles? par litre", "µmol/l"),
    (r"milligrammes?", "mg"),
    (r"microgrammes?", "µg"),
    (r"nanogrammes?", "ng"),
    (r"kilogrammes?|kilos?", "kg"),
    (r"grammes?", "g"),
    (r"millilitres?", "ml"),
    (r"centilitres?", "cl"),
    (r"millimètres?", "mm"),
    (r"centimètres?", "cm"),
    (r"kilomètres?", "km"),
    (r"pour ?cent", "%"),
    (r"unités internationales", "UI"),
    (r"milliéquivalents?", "mEq"),
    (r"kilocalories?", "kcal"),
    (r"degrés? celsius", "°C"),
)
_EN_UNITS = (
    (r"millimet(?:er|re)s? of mercury", "mmHg"),
    (r"kilomet(?:er|re)s? (?:per|an|a) hour", "km/h"),
    (r"milligrams? per kilo(?:gram)?s?", "mg/kg"),
    (r"milligrams? per (?:liter|litre)", "mg/l"),
    (r"grams? per (?:liter|litre)", "g/l"),
    (r"millimoles? per (?:liter|litre)", "mmol/l"),
    (r"grams? per (?:deciliter|decilitre)", "g/dl"),
    (r"milligrams? per (?:deciliter|decilitre)", "mg/dl"),
    (r"micromoles? per (?:liter|litre)", "µmol/l"),
    (r"milligrams?", "mg"),
    (r"micrograms?", "µg"),
    (r"nanograms?", "ng"),
    (r"kilograms?|kilos?", "kg"),
    (r"grams?", "g"),
    (r"millilit(?:er|re)s?", "ml"),
    (r"millimet(?:er|re)s?", "mm"),
    (r"centimet(?:er|re)s?", "cm"),
    (r"kilomet(?:er|re)s?", "km"),
    (r"per ?cent", "%"),
    (r"international units", "IU"),
    (r"degrees? (?:celsius|centigrade)", "°C"),
)
_UNITS = {"fr": _FR_UNITS, "en": _EN_UNITS}
_UNIT_RE = {
    lang: re.compile(
        r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s+("
        + "|".join(f"(?:{p})" for p, _ in table)
        + r")(?![\w'’])",
        re.IGNORECASE,
    )
    for lang, table in _UNITS.items()
}


@lru_cache(maxsize=4096)
def is_number(word: str, lang: str) -> bool:
    """Whether a single word is a cardinal number ("cinq", "quatre-vingt-dix", "12")."""
    if _DIGITS_RE.match(word):
        return True
    try:
        text2num(word.lower(), lang)
    except (ValueError, IndexError, KeyError):
        return False
    return True


@lru_cache(maxsize=4096)
def _is_ordinal(word: str, lang: str) -> bool:
    return bool(_ORDINAL_RE.match(alpha2digit(word.lower(), lang, threshold=0)))


def _is_unit(words: Sequence[str], j: int, lang: str) -> bool:
    text = " ".join(words[j : j + 4])
    return bool(_UNIT_RE[lang].match("1 " + text))


def _keep_article(words: Sequence[str], j: int, lang: str) -> bool:
    """ "un"/"une"/"one" is a number only inside a number, a decimal, a score or a dose."""
    prev = words[j - 1] if j else ""
    prev2 = words[j - 2] if j > 1 else ""
    nxt = words[j + 1] if j + 1 < len(words) else ""
    nxt2 = words[j + 2] if j + 2 < len(words) else ""
    if is_number(prev, lang) or (prev == _AND[lang] and is_number(prev2, lang)):
        return False
    if is_number(nxt, lang) and not nxt[:1].isdigit():
        return False  # "un million", "one hundred"; "un 110" is an article and Whisper's digits
    if _is_unit(words, j + 1, lang) or nxt in _DOSE_FORMS[lang]:
        return False
    if lang == "fr" and nxt in ("mètre", "mètres") and is_number(nxt2, lang):
        return False  # a height: "un mètre soixante-dix"
    if nxt in (_DECIMAL[lang], _OVER[lang]) and is_number(nxt2, lang):
        return False
    if lang == "fr" and (prev in french.SIGNS and prev2 == "j"):
        return False  # a day count: "J plus un"
    if lang == "fr" and _bare(prev) in french.DIGIT_PREV and nxt != "peu":
        return False  # "J un", "type un", "l'article un"; but "une pièce un peu sombre"
    if lang == "fr" and nxt in french.RANGE and is_number(nxt2, lang):
        return not _digits_follow(words, j + 1)  # "un à deux comprimés" -> "1 à 2 comprimés"
    joins = french.JOINS if lang == "fr" else (_DECIMAL[lang], _OVER[lang])
    return not (prev in joins and is_number(prev2, lang))  # "2,1", "2/1", "4127-1"


def _keep_ordinal(words: Sequence[str], j: int, lang: str) -> bool:
    """Ordinals stay words ("la deuxième fois") except in dates ("le premier mars")."""
    months = _MONTHS[lang]
    prev = words[j - 1] if j else ""
    nxt = words[j + 1] if j + 1 < len(words) else ""
    nxt2 = words[j + 2] if j + 2 < len(words) else ""
    if nxt in months or prev in months or (nxt == "of" and nxt2 in months):
        return False
    if lang == "fr" and words[j].startswith("premi"):
        return True  # never part of a compound: "les dix premiers jours"
    return not is_number(prev, lang)


def _keep_word(words: Sequence[str], j: int, lang: str, small_words: bool) -> bool:
    """Whether the number word at ``j`` must stay a word."""
    word = words[j]
    prev = words[j - 1] if j else ""
    nxt = words[j + 1] if j + 1 < len(words) else ""
    if word in _ARTICLES[lang]:
        return _keep_article(words, j, lang)
    if lang == "fr" and word == "cent" and prev == "pour":
        return True  # "pour cent" is a unit, not "pour 100"
    if lang == "fr" and word in ("neuf", "neufs") and (prev in _NEUF_PREV or not nxt):
        return not _digits_follow(words, j + 1)  # "remis à neuf", but "à neuf grammes"
    if lang == "fr" and word in _LARGE and is_number(prev, lang) and not is_number(nxt, lang):
        return True  # "deux millions d'euros" -> "2 millions d'euros", not 2000000
    # "l'un des deux", "tous les deux"
    if prev in _PAIR_PREV[lang] and (not nxt or (j > 1 and words[j - 2] in _ALL[lang])):
        return True
    return small_words and lang == "fr" and _lone_small(words, j) and _small_in_words(words, j)


def _at(words: Sequence[str], j: int) -> str:
    return words[j] if 0 <= j < len(words) else ""


def _bare(word: str) -> str:
    """The word without its elided article: "l'article" -> "article"."""
    return word.rsplit("'", 1)[-1]


@lru_cache(maxsize=1024)
def _is_small(word: str) -> bool:
    """A French number word below the words threshold ("deux", "neuf", "zéro")."""
    if word[:1].isdigit() or not is_number(word, "fr"):
        return False
    return text2num(word, "fr") < french.WORDS_BELOW


def _lone_small(words: Sequence[str], j: int) -> bool:
    """A French number word below ten that is a whole number by itself, not a
    piece of "vingt deux", "deux cents", "vingt et un", "deux virgule cinq",
    "trois sur six" or "1234 tiret cinq"."""
    if not _is_small(words[j]):
        return False
    prev, prev2 = _at(words, j - 1), _at(words, j - 2)
    nxt, nxt2 = _at(words, j + 1), _at(words, j + 2)
    if is_number(prev, "fr") or is_number(nxt, "fr"):
        return False
    if prev == "et" and words[j] in _ARTICLES["fr"] and is_number(prev2, "fr"):
        return False
    if prev in french.JOINS and is_number(prev2, "fr"):
        return False
    return not (nxt in french.JOINS and is_number(nxt2, "fr"))


def _small_in_words(words: Sequence[str], j: int) -> bool:
    """French running text: a lone number below ten stays a word ("les deux
    licences", "à trois reprises") unless it measures, doses, dates or refers
    ("deux comprimés", "le trois mars", "type deux", "l'article trois", "J trois")."""
    prev = _bare(_at(words, j - 1))
    if prev in french.DIGIT_PREV or (prev in french.SIGNS and _at(words, j - 2) == "j"):
        return False
    return not _digits_follow(words, j + 1)


def _digits_follow(words: Sequence[str], k: int) -> bool:
    """Whether what follows makes a number a measure: a unit, a dose form, a
    duration, money, a month, a decimal or score, a posology frequency. A range
    carries it back ("deux à trois comprimés", "du trois au dix janvier")."""
    while _at(words, k) in french.RANGE and is_number(_at(words, k + 1), "fr"):
        k += 2
        while is_number(_at(words, k), "fr"):
            k += 1
    nxt, nxt2 = _at(words, k), _at(words, k + 1)
    if nxt in french.DIGIT_NEXT or nxt in _DOSE_FORMS["fr"] or nxt in _MONTHS["fr"]:
        return True
    if _is_unit(words, k, "fr") or (nxt in french.JOINS and is_number(nxt2, "fr")):
        return True
    if nxt in ("point", "points") and nxt2 == "de" and _at(words, k + 2) == "suture":
        return True  # a count of stitches, as the benchmark writes it
    if nxt == "fois":
        nxt, nxt2 = nxt2, _at(words, k + 2)  # "trois fois par jour" is posology
    return nxt == "par" and nxt2 in french.TIME_UNITS


def _separates(words: Sequence[str], j: int) -> bool:
    """French "et" between two numbers that do not compound: text2num reads
    "J dix et deux comprimés" as "J 12 comprimés"; only "vingt et un" and
    "soixante et onze" are one number."""
    if words[j] != "et" or not is_number(_at(words, j - 1), "fr"):
        return False
    nxt = _at(words, j + 1)
    return is_number(nxt, "fr") and nxt not in ("un", "une", "onze")


def _protect(run: Sequence[Token], lang: str, small_words: bool) -> tuple[list[Token], list[str]]:
    """Swap words text2num must not touch for sentinels; return the originals."""
    words = [t.text.lower().replace("’", "'") if t.kind is Kind.WORD else "" for t in run]
    out, saved = list(run), []
    for j, token in enumerate(run):
        if token.kind is not Kind.WORD:
            continue
        word = words[j]
        if (
            lang == "en"
            and word == "a"
            and j + 1 < len(words)
            and words[j + 1] in ("hundred", "thousand")
        ):
            out[j] = replace(token, text="one")
            continue
        number = is_number(word, lang)
        # text2num splits "d’un" at a curly apostrophe (not at "d'un"): an elided
        # word is never a number to convert
        elided = "’" in token.text and is_number(_bare(word), lang)
        if (
            elided
            or (lang == "fr" and _separates(words, j))
            or (number and _keep_word(words, j, lang, small_words))
            or (not number and _is_ordinal(word, lang) and _keep_ordinal(words, j, lang))
        ):
            out[j] = replace(token, text=f"zzq{len(saved)}qzz")
            saved.append(token.text)
        elif number and small_words and lang == "fr" and _lone_small(words, j):
            # a lone number found in a digit context is converted here: text2num
            # reads "du deux au neuf mai" as "du 2 au neuf mai" (neuf the adjective)
            out[j] = replace(token, text=str(text2num(word, "fr")))
    return out, saved


def _group_thousands(match: re.Match[str], sep: str) -> str:
    digits = match.group(1)
    groups = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    return sep.join(groups) + match.group(2)


def _units(text: str, lang: str) -> str:
    table = _UNITS[lang]
    compiled = [(re.compile(f"^(?:{p})$", re.IGNORECASE), abbr) for p, abbr in table]

    def abbreviate(match: re.Match[str]) -> str:
        unit = next(abbr for rx, abbr in compiled if rx.match(match.group(2)))
        space = "" if unit == "%" and lang == "en" else " "
        return f"{match.group(1)}{space}{unit}"

    return _UNIT_RE[lang].sub(abbreviate, text)


def _english_dates(text: str) -> str:
    """ "March 12th, 20 26" (text2num reads years in pairs) -> "March 12, 2026"."""
    months = _EN_MONTHS_RE
    context = (
        rf"(?:{months})\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+|(?:in|since|until|by|from|year|of)\s+"
    )
    text = re.sub(
        rf"\b({context})(19|20) (\d\d)\b",
        r"\1\2\3",
        text,
        flags=re.IGNORECASE,
    )
    text = re.sub(rf"\b({months}) (\d{{1,2}})(?:st|nd|rd|th)\b", r"\1 \2", text)
    return re.sub(rf"\b({months}) (\d{{1,2}}) (\d{{4}})\b", r"\1 \2, \3", text)


def _post(text: str, lang: str) -> str:
    """Written conventions once the numbers are digits."""
    if lang == "en":
        text = _english_dates(text)
    text = _units(text, lang)
    over = _OVER[lang]
    text = re.sub(rf"(?<![\w.,/])(\d+) {over} (\d+)(?![\w.,/])", r"\1/\2", text)
    if lang == "fr":
        text = re.sub(r"\b(\d{1,2}) heures? (\d\d)\b(?! ?minutes?)", r"\1 h \2", text)
        text = re.sub(r"(?<![\w.,])([12]) mètres? (\d\d)\b(?![.,]\d)", r"\1,\2 m", text)
    sep = NBSP if lang == "fr" else ","
    grouping: Callable[[re.Match[str]], str] = lambda m: _group_thousands(m, sep)  # noqa: E731
    currency = r"euros?|€|dollars?|\$" + ("|pounds?|£" if lang == "en" else "")
    return re.sub(rf"(?<![\d.,])(\d{{4,}})(\s+(?:{currency}))", grouping, text)


def convert_numbers(run: Sequence[Token], lang: str, *, small_words: bool = False) -> list[Token]:
    """Digits, units and dates in a stretch of plain dictated text.

    ``run`` holds words and Whisper punctuation between two commands; the result
    is re-tokenised so the renderer sees "2,5" and "140/90" as single words.
    ``small_words`` keeps French numbers below ten in words in running text.
    """
    if not any(t.kind is Kind.WORD for t in run):
        return list(run)
    protected, saved = _protect(run, lang, small_words)
    text = alpha2digit(join_tokens(protected), lang, threshold=0)
    text = _SENTINEL_RE.sub(lambda m: saved[int(m.group(1))], text)
    text = _post(text, lang)
    tokens = tokenize(text)
    if tokens:
        tokens[0] = replace(tokens[0], space_before=run[0].space_before)
    return tokens
