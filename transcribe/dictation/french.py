"""French notations a secretary types: day counts, legal references, codes, titles.

Two halves. The word lists at the top are the French number policy that
:mod:`.numbers` applies: in running text a number below ten stays a word ("les
deux licences", "à trois reprises"), and a number that measures, doses, dates or
refers becomes digits ("2 comprimés", "3 mois", "le 3 mars", "type 2"). The
passes below work on a stretch of text whose numbers are already digits:

* day counts: "J 10" -> "J10", "J plus 3" -> "J+3", "J moins 2" -> "J-2";
* article references: "article L 1234 tiret 5" -> "article L. 1234-5";
  elsewhere a "tiret" kept between two numbers (see ``Command.joins_numbers``)
  joins them: "loi 78 tiret 17" -> "loi 78-17";
* the names of codes take their capital: "code du travail" -> "Code du travail";
* per-client options: "1 500 euros" -> "1 500 €", "docteur Martin" -> "Dr Martin".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from transcribe.dictation.commands import word_set
from transcribe.dictation.options import DictationOptions
from transcribe.dictation.tokens import NBSP, Kind, Token, join_tokens, tokenize

#: Lone numbers from zéro to neuf stay words in running text (see the README).
WORDS_BELOW = 10
TIME_UNITS = word_set(
    "jour jours semaine semaines mois an ans année années heure heures h minute minutes min "
    "seconde secondes trimestre trimestres semestre semestres"
)
#: Words after a number that make it a measure, a dose, a duration or an amount.
DIGIT_NEXT = TIME_UNITS | word_set(
    "ampoule ampoules flacon flacons dose doses prise prises unité unités injection injections "
    "pulvérisation pulvérisations inhalation inhalations patch patchs capsule capsules ovule "
    "ovules euro euros € centime centimes dollar dollars $ mètre mètres litre litres degré "
    "degrés agrafe agrafes paquets-années"
)
#: Words before a number that make it a reference: "type 2", "article 3", "J3".
DIGIT_PREV = word_set(
    "j type stade grade classe niveau score article articles alinéa alinéas chapitre section "
    "annexe pièce pièces page pages numéro numéros n° tome chambre box salle lot version "
    "cycle cure phase"
)
RANGE = word_set("à au ou et")  # "deux à trois comprimés", "du trois au dix janvier"
JOINS = word_set("virgule sur tiret")  # 2,5 - 2/6 - 1234-5
SIGNS = word_set("plus moins + -")  # J+3, J-2

_DAY_COUNT_RE = re.compile(
    r"(?<![\w'’])[Jj] ?(?:(?P<plus>plus|\+)|(?P<minus>moins|-|–))? ?(?P<n>\d+)(?!\w|[,.]\d)"
)
# One article of a code: a capital letter (legislative, regulatory, decree,
# order), the number, and its sub-number after a dash, a spoken "tiret" or a space.
_REFERENCE_RE = re.compile(
    r"\b(?P<code>[LRDA])\.? ?(?P<n>\d+)(?:(?: ?(?:-|–|tiret) ?| )(?P<sub>\d+))?(?!\w|[,.]\d)"
)
_ONE_REFERENCE = r"\b(?-i:[LRDA])\.? ?\d+(?:(?: ?(?:-|–|tiret) ?| )\d+)?(?!\w|[,.]\d)"
_ARTICLE_RE = re.compile(
    rf"\b(?P<head>articles?) (?P<refs>{_ONE_REFERENCE}(?:(?:,| et| ou| à) {_ONE_REFERENCE})*)",
    re.IGNORECASE,
)
_JOINED_RE = re.compile(r"(?<![\w.,])(\d+) tiret (\d+)(?![\w,.]\d)")
_CODES = (
    "civil",
    "pénal",
    "du travail",
    "de commerce",
    "rural",
    "de la santé publique",
    "de la sécurité sociale",
    "de procédure civile",
    "de procédure pénale",
    "de la consommation",
    "de la route",
    "de l'urbanisme",
    "de l'environnement",
    "de l'éducation",
    "de la mutualité",
    "des assurances",
    "de déontologie médicale",
    "de justice administrative",
    "de la propriété intellectuelle",
    "de la construction et de l'habitation",
    "de l'action sociale et des familles",
    "des procédures civiles d'exécution",
    "général des impôts",
    "général des collectivités territoriales",
    "monétaire et financier",
)
_CODE_RE = re.compile(
    r"\bcode ("
    + "|".join(re.escape(c).replace("'", "['’]") for c in sorted(_CODES, key=len, reverse=True))
    + r")(?![\w'’-])",
    re.IGNORECASE,
)
_EUROS_RE = re.compile(r"(?<=\d)\s+euros?\b")
_TITLES = {"docteur": "Dr", "docteure": "Dr", "professeur": "Pr", "professeure": "Pr"}
# The name after the title must be capitalised: the lookahead is case-sensitive.
_TITLE_RE = re.compile(
    r"(?<![\w'’])(docteure?|professeure?) (?=(?-i:[A-ZÀ-ÖØ-Þ])\w)", re.IGNORECASE
)
_SALUTATION = word_set("cher chère chers chères")
_ADDRESS = word_set("monsieur madame")


def day_counts(text: str) -> str:
    """ "J 10", "J plus 3", "J moins 2", "J+ 3" -> "J10", "J+3", "J-2": the
    post-operative day, written glued as in a hospital file."""

    def glue(match: re.Match[str]) -> str:
        sign = "+" if match.group("plus") else "-" if match.group("minus") else ""
        return f"J{sign}{match.group('n')}"

    return _DAY_COUNT_RE.sub(glue, text)


def _reference(match: re.Match[str]) -> str:
    code, number, sub = match.group("code"), match.group("n"), match.group("sub")
    return f"{code}. {number}" + (f"-{sub}" if sub else "")


def references(text: str) -> str:
    """ "article L 1234 tiret 5", "article L1234 5" -> "article L. 1234-5" (codes
    number their articles by part; the letter says legislative, regulatory or
    decree). A "tiret" left between two numbers joins them: "78 tiret 17" -> "78-17"."""

    def one(match: re.Match[str]) -> str:
        refs = _REFERENCE_RE.sub(_reference, match.group("refs"))
        return f"{match.group('head')} {refs}"

    text = _ARTICLE_RE.sub(one, text)
    return _JOINED_RE.sub(r"\1-\2", text)


def code_names(text: str) -> str:
    """ "code du travail" -> "Code du travail": a code's name is a title, capital
    on its first word only, wherever it is named."""
    return _CODE_RE.sub(lambda m: "Code " + m.group(1).lower().replace("’", "'"), text)


def currency_sign(text: str) -> str:
    """ "1 500 euros" -> "1 500 €", a no-break space before the sign."""
    return _EUROS_RE.sub(NBSP + "€", text)


def _in_address(before: str) -> bool:
    """A salutation or an address keeps the title in full: "Cher docteur
    Martin", "Monsieur le Professeur Durand"."""
    words = re.findall(r"[\w'’]+", before.lower())[-2:]
    if words and words[-1] in _SALUTATION:
        return True
    return len(words) == 2 and words[0] in _ADDRESS and words[1] in ("le", "la")


def abbreviate_titles(text: str) -> str:
    """ "docteur Martin" -> "Dr Martin", "professeur Durand" -> "Pr Durand", only
    before a capitalised name and never in a salutation or an address. "Maître"
    is never abbreviated: lawyers write it in full."""

    def title(match: re.Match[str]) -> str:
        if _in_address(text[: match.start()]):
            return match.group(0)
        return _TITLES[match.group(1).lower()] + " "

    return _TITLE_RE.sub(title, text)


def _rewrite(text: str, options: DictationOptions) -> str:
    """Every French notation the client's options ask for, in order."""
    if options.numbers:
        text = references(day_counts(text))
        if options.currency_sign:
            text = currency_sign(text)
    text = code_names(text)
    return abbreviate_titles(text) if options.abbreviate_titles else text


def french_notations(run: Sequence[Token], options: DictationOptions) -> list[Token]:
    """Apply the French notations to a stretch of plain text between commands;
    the stretch is re-tokenised only when something changed."""
    if not any(t.kind is Kind.WORD for t in run):
        return list(run)
    text = join_tokens(run)
    written = _rewrite(text, options)
    if written == text:
        return list(run)
    tokens = tokenize(written)
    if tokens:
        tokens[0] = replace(tokens[0], space_before=run[0].space_before)
    return tokens
