"""Replace doubtful words that sound and look like a vocabulary term.

Rules, in the order they protect the text:

* a word Whisper was sure of (probability >= ``max_probability``) is never
  changed, nor is any phrase containing one;
* very common words ("the", "le", "patient"...) are never turned into a term;
* a phrase that already spells a term is left alone and is not absorbed into a
  neighbouring replacement (only its accents may be restored);
* a plural or singular of a term is grammar, not a miss, and is left alone;
* a candidate must pass both a spelling score and a sound-alike score
  (rapidfuzz ratio on :mod:`normalise` keys); overlapping candidates are
  resolved best score first.

Every replacement is marked ``source: "lexicon"`` with the original text and
probabilities, so the review loop can show and undo it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process

from transcribe.errors import ConfigError
from transcribe.vocabulary.lexicon import shipped_word_list
from transcribe.vocabulary.normalise import (
    compact_key,
    normalise_words,
    phonetic_key,
    strip_accents,
)
from transcribe.vocabulary.terms import Term, Vocabulary
from transcribe.vocabulary.words import (
    as_word_dict,
    ends_clause,
    is_low_confidence,
    replace_span,
    split_edges,
)

LEXICON_SOURCE = "lexicon"
_NOT_LETTER = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class CorrectionOptions:
    """Thresholds for lexicon correction; defaults err on the side of not changing."""

    max_probability: float = 0.5
    min_score: float = 88.0
    min_spelling_score: float = 75.0
    max_span_words: int = 3
    min_term_chars: int = 5
    short_term_chars: int = 8
    short_term_min_score: float = 94.0
    protected_words: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 < self.max_probability <= 1.0:
            raise ConfigError("correction max_probability must be in (0, 1]")
        if not 0.0 <= self.min_spelling_score <= self.min_score <= 100.0:
            raise ConfigError("correction scores must satisfy 0 <= spelling <= min <= 100")
        if self.max_span_words < 1 or self.min_term_chars < 1:
            raise ConfigError("correction span and term length must be positive")


@dataclass(frozen=True)
class Replacement:
    """One change, by word index in the input (``end`` exclusive)."""

    start: int
    end: int
    original: str
    replacement: str
    score: float
    source: str


@dataclass(frozen=True)
class CorrectionResult:
    """The corrected words (JSON-ready dicts) and the list of changes made."""

    words: list[dict[str, Any]]
    replacements: tuple[Replacement, ...]


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    term: Term
    score: float


def _is_abbreviation(text: str) -> bool:
    """ECG, HbA1c, NT-proBNP: too short and letter-by-letter to match by sound."""
    capitals = sum(ch.isupper() for ch in text)
    return capitals >= 2 or any(ch.isdigit() for ch in text)


# Endings that turn a word into another real word of the same family
# ("inspect-ing" / "inspection", "demand-er" / "demandeur", "scapul-ae").
# fmt: off
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "en": (
        "s", "es", "d", "ed", "ing", "ings", "er", "ers", "or", "ist", "ists", "ic", "ics",
        "ical", "ally", "ly", "al", "ae", "i", "ise", "ised", "ize", "ized", "ive", "ion",
        "ions", "ate", "ated", "ating", "y", "ment", "ments", "ness",
    ),
    "fr": (
        "s", "x", "es", "ee", "ees", "er", "ez", "ent", "ant", "ants", "ante", "antes", "ai",
        "ais", "ait", "aient", "ions", "iez", "ons", "a", "as", "era", "erai", "eras", "erez",
        "eront", "erait", "ique", "iques", "isme", "iste", "istes", "ise", "iser", "ement",
        "eur", "eurs", "euse", "ation", "ations", "al", "aux",
    ),
}
# fmt: on
_MIN_STEM = 4


def _is_word_family(spelled: str, term: str, lang: str) -> bool:
    """True when the phrase is a relative of the term, not a misspelling of it.

    Without a full dictionary, this is what keeps "inspecting", "demander" or
    "metastases" from becoming "inspection", "demandeur" or "metastasis", while
    "bisoprolole" and "apixabane" (no such ending) are still corrected.
    """
    shorter, longer = sorted((spelled, term), key=len)
    if len(longer) - len(shorter) >= 2 and (longer.startswith(shorter) or longer.endswith(shorter)):
        return True  # "appendice"/"appendicite", "pression"/"dépression"
    if longer[len(shorter) :] in ("s", "x") and longer.startswith(shorter):
        return True  # plural and singular
    if shorter[-1:] in "aeiouy" and longer == shorter + "e":
        return True  # "salarié"/"salariée", "tibia"/"tibiae"
    for suffix in _SUFFIXES.get(lang, _SUFFIXES["en"]):
        stem = spelled[: -len(suffix)]
        if spelled.endswith(suffix) and len(stem) >= _MIN_STEM and term.startswith(stem):
            return True
    return False


def _is_part_of(text: str, term: Term) -> bool:
    """A fragment of a multi-word term ("notice" of "on notice") is not a miss."""
    spoken, written = normalise_words(text), normalise_words(term.text)
    shorter, longer = sorted((spoken, written), key=len)
    n = len(shorter)
    return any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def _may_respell(text: str, term: str) -> bool:
    """Join split words and add missing accents, but never swap one accent for another."""
    letters = _NOT_LETTER.sub("", text.casefold())
    return strip_accents(letters) == letters or letters == _NOT_LETTER.sub("", term.casefold())


def common_words(lang: str) -> frozenset[str]:
    """Words never turned into a term, for French or English (English otherwise)."""
    return shipped_word_list("common-fr.txt" if lang == "fr" else "common-en.txt")


@dataclass(frozen=True)
class LexiconMatcher:
    """Index of a vocabulary's keys, built once and reused for every dictation."""

    lang: str
    options: CorrectionOptions
    terms: tuple[Term, ...]
    spellings: tuple[str, ...]
    sounds: tuple[str, ...]
    exact: Mapping[str, Term]
    common: frozenset[str]

    @classmethod
    def from_vocabulary(
        cls,
        vocabulary: Vocabulary,
        *,
        lang: str | None = None,
        options: CorrectionOptions | None = None,
    ) -> LexiconMatcher:
        """Keep terms that can be matched safely: long enough, not abbreviations."""
        opts = options or CorrectionOptions()
        language = lang or vocabulary.lang
        eligible = tuple(t for t in vocabulary if _is_matchable(t, opts))
        exact: dict[str, Term] = {}
        for term in vocabulary:
            exact.setdefault(compact_key(term.text), term)
        return cls(
            lang=language,
            options=opts,
            terms=eligible,
            spellings=tuple(compact_key(t.text) for t in eligible),
            sounds=tuple(phonetic_key(t.text, language) for t in eligible),
            exact=exact,
            common=frozenset(
                compact_key(word) for word in (*common_words(language), *opts.protected_words)
            ),
        )

    def correct(self, words: Iterable[Mapping[str, Any] | Any]) -> CorrectionResult:
        """Apply lexicon replacements to a transcript's words."""
        items = [as_word_dict(w) for w in words]
        editable = [self._editable(w) for w in items]
        candidates = self._exact_candidates(items, editable)
        candidates += self._fuzzy_candidates(items, editable)
        chosen = _select(candidates)
        return _apply(items, chosen)

    def _editable(self, word: Mapping[str, Any]) -> bool:
        """Doubtful and not already changed by an earlier pass (learned, lexicon)."""
        return "source" not in word and is_low_confidence(word, self.options.max_probability)

    def _spans(
        self, items: Sequence[Mapping[str, Any]], editable: Sequence[bool]
    ) -> Iterator[tuple[int, int, str]]:
        """Runs of 1..max_span_words editable words that do not cross punctuation."""
        for i in range(len(items)):
            for j in range(i + 1, min(i + self.options.max_span_words, len(items)) + 1):
                if not editable[j - 1] or (j - 1 > i and ends_clause(items[j - 2]["word"])):
                    break
                yield i, j, " ".join(split_edges(w["word"])[1] for w in items[i:j])

    def _exact_candidates(
        self, items: Sequence[Mapping[str, Any]], editable: list[bool]
    ) -> list[_Candidate]:
        """Spans that already spell a term: protect them, restore accents if needed.

        Protection matters: without it "le bisoprolol" could be "corrected" into
        "bisoprolol" by a fuzzy match that swallows the article.
        """
        found: list[_Candidate] = []
        protected: set[int] = set()
        for i, j, text in self._spans(items, editable):
            term = self.exact.get(compact_key(text))
            if term is None or self._all_common(text):
                continue
            protected.update(range(i, j))
            # Restore accents Whisper left out, never swap one accent for another:
            # "goutté" and "goutte" are both words.
            if text.casefold() != term.text.casefold() and _may_respell(text, term.text):
                found.append(_Candidate(i, j, term, 100.0))
        for index in protected:
            editable[index] = False
        return found

    def _fuzzy_candidates(
        self, items: Sequence[Mapping[str, Any]], editable: Sequence[bool]
    ) -> list[_Candidate]:
        found: list[_Candidate] = []
        for i, j, text in self._spans(items, editable):
            match = self._best_match(text)
            if match is not None:
                found.append(_Candidate(i, j, match[0], match[1]))
        return found

    def _all_common(self, text: str) -> bool:
        return all(word in self.common for word in normalise_words(text))

    def _best_match(self, text: str) -> tuple[Term, float] | None:
        """The best-scoring term for a phrase, or None if nothing is close enough."""
        spelled = compact_key(text)
        if len(spelled) < self.options.min_term_chars - 1 or self._all_common(text):
            return None
        if any(ch.isdigit() for ch in spelled):
            return None
        sound = phonetic_key(text, self.lang)
        best: tuple[Term, float] | None = None
        for choice, spelling, index in process.extract(
            spelled,
            self.spellings,
            scorer=fuzz.ratio,
            score_cutoff=self.options.min_spelling_score,
            limit=5,
        ):
            term = self.terms[index]
            if _is_word_family(spelled, choice, self.lang) or _is_part_of(text, term):
                continue
            score = (spelling + fuzz.ratio(sound, self.sounds[index])) / 2
            if score >= self._needed(choice) and (best is None or score > best[1]):
                best = (term, score)
        return best

    def _needed(self, spelled_term: str) -> float:
        """Short terms ("estate", "stroke") sit close to everyday words: ask for more."""
        if len(spelled_term) >= self.options.short_term_chars:
            return self.options.min_score
        return max(self.options.min_score, self.options.short_term_min_score)


def _is_matchable(term: Term, options: CorrectionOptions) -> bool:
    return (
        len(compact_key(term.text)) >= options.min_term_chars
        and not _is_abbreviation(term.text)
        and len(term.text.split()) <= options.max_span_words
    )


def _select(candidates: list[_Candidate]) -> list[_Candidate]:
    """Best score first, shorter span on ties; overlapping weaker candidates lose."""
    ordered = sorted(candidates, key=lambda c: (-c.score, c.end - c.start, c.start))
    taken: set[int] = set()
    chosen: list[_Candidate] = []
    for candidate in ordered:
        span = set(range(candidate.start, candidate.end))
        if not span & taken:
            taken |= span
            chosen.append(candidate)
    return sorted(chosen, key=lambda c: c.start)


def _apply(items: list[dict[str, Any]], chosen: list[_Candidate]) -> CorrectionResult:
    out: list[dict[str, Any]] = []
    replacements: list[Replacement] = []
    cursor = 0
    for cand in chosen:
        out.extend(items[cursor : cand.start])
        score = round(cand.score, 1)
        merged = replace_span(
            items, cand.start, cand.end, cand.term.text, source=LEXICON_SOURCE, score=score
        )
        out.append(merged)
        replacements.append(
            Replacement(
                cand.start, cand.end, merged["original"], cand.term.text, score, LEXICON_SOURCE
            )
        )
        cursor = cand.end
    out.extend(items[cursor:])
    return CorrectionResult(out, tuple(replacements))


def correct_words(
    words: Iterable[Mapping[str, Any] | Any],
    vocabulary: Vocabulary,
    *,
    options: CorrectionOptions | None = None,
) -> CorrectionResult:
    """One-shot lexicon correction; build a LexiconMatcher to reuse the index."""
    return LexiconMatcher.from_vocabulary(vocabulary, options=options).correct(words)
