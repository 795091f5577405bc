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
  resolved best score first;
* with the audio at hand (an :class:`~transcribe.vocabulary.acoustic.AcousticCheck`),
  a candidate too far for those scores alone is still taken when Whisper,
  scoring the same audio, prefers the term by a margin; it may change only
  doubtful or unsure words, never a very common one ("the client" does not
  become "our client").

Every replacement is marked ``source: "lexicon"`` with the original text and
probabilities, so the review loop can show and undo it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rapidfuzz import fuzz, process

from transcribe.errors import ConfigError
from transcribe.vocabulary.acoustic import AcousticCheck, Proposal
from transcribe.vocabulary.lexicon import shipped_word_list
from transcribe.vocabulary.normalise import (
    compact_key,
    normalise_words,
    phonetic_key,
    strip_accents,
    variant_key,
)
from transcribe.vocabulary.terms import Term, Vocabulary
from transcribe.vocabulary.words import (
    as_word_dict,
    ends_clause,
    ends_with_comma,
    is_low_confidence,
    replace_span,
    split_edges,
)

LEXICON_SOURCE = "lexicon"
UNHEARD_GAIN = -999.0  # recorded for words without timings (JSON has no -inf)
_SURE, _UNSURE, _DOUBTFUL = 0, 1, 2
_NOT_LETTER = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class CorrectionOptions:
    """Thresholds for lexicon correction; defaults err on the side of not changing.

    Whisper's word probability sorts words in three bands:

    * ``probability >= sure_probability`` (0.9): *sure*, never changed. A sure
      word may sit inside a corrected phrase only if it stays exactly as it was
      ("injection fraction" -> "ejection fraction" keeps "fraction").
    * ``max_probability <= probability < sure_probability``: *unsure*, changed
      only for a near-exact match, ``medium_min_score`` (93) or better: Whisper
      base is often fairly confident in a misspelling ("clarythromycin" 0.57).
    * ``probability < max_probability`` (0.5): *doubtful*, changed for a match
      of ``min_score`` (88; 94 for short terms).

    A word without a probability counts as sure. Set ``medium_min_score`` above
    100 to change doubtful words only.

    With an acoustic check, a doubtful or unsure phrase that matches a term at
    ``verify_min_score`` (70) is replaced when Whisper gives the window at least
    ``min_acoustic_gain`` nats more log-probability with the term. On
    ``bench/asr.py``'s sets true fixes gained +1 to +9 and false ones lost 4 to
    25; the margin of 1 keeps near-ties as they were.
    """

    max_probability: float = 0.5
    sure_probability: float = 0.9
    min_score: float = 88.0
    medium_min_score: float = 93.0
    min_spelling_score: float = 75.0
    max_span_words: int = 4
    min_term_chars: int = 5
    short_term_chars: int = 8
    short_term_min_score: float = 94.0
    protected_words: frozenset[str] = frozenset()
    verify_min_score: float = 70.0
    verify_min_spelling_score: float = 60.0
    min_acoustic_gain: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.max_probability <= self.sure_probability <= 1.0:
            raise ConfigError(
                "correction probabilities must satisfy 0 < max_probability <= sure_probability <= 1"
            )
        if not 0.0 <= self.min_spelling_score <= self.min_score <= 100.0:
            raise ConfigError("correction scores must satisfy 0 <= spelling <= min <= 100")
        if self.medium_min_score < self.min_score:
            raise ConfigError("correction medium_min_score must be >= min_score")
        if self.max_span_words < 1 or self.min_term_chars < 1:
            raise ConfigError("correction span and term length must be positive")
        if not 0.0 <= self.verify_min_spelling_score <= self.verify_min_score <= 100.0:
            raise ConfigError("verified correction scores must satisfy 0 <= spelling <= min")


@dataclass(frozen=True)
class Replacement:
    """One change, by word index in the input (``end`` exclusive)."""

    start: int
    end: int
    original: str
    replacement: str
    score: float
    source: str
    acoustic_gain: float | None = None  # set when Whisper was asked (see acoustic.py)


@dataclass(frozen=True)
class Checked:
    """A candidate put to the acoustic check, taken or not (recorded in the draft)."""

    heard: str
    term: str
    score: float
    gain: float
    taken: bool


@dataclass(frozen=True)
class CorrectionResult:
    """The corrected words (JSON-ready dicts), the changes made, and what was checked."""

    words: list[dict[str, Any]]
    replacements: tuple[Replacement, ...]
    checked: tuple[Checked, ...] = ()


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    term: Term
    score: float
    gain: float | None = None
    needs_check: bool = False  # the spelling alone is not enough (see _swallows_common)


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
    variants: Mapping[str, Term]
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
        variants: dict[str, Term] = {}
        for term in vocabulary:
            exact.setdefault(compact_key(term.text), term)
            if language == "en":
                variants.setdefault(variant_key(term.text), term)
        return cls(
            lang=language,
            options=opts,
            terms=eligible,
            spellings=tuple(compact_key(t.text) for t in eligible),
            sounds=tuple(phonetic_key(t.text, language) for t in eligible),
            exact=exact,
            variants=variants,
            common=frozenset(
                compact_key(word) for word in (*common_words(language), *opts.protected_words)
            ),
        )

    def correct(
        self, words: Iterable[Mapping[str, Any] | Any], check: AcousticCheck | None = None
    ) -> CorrectionResult:
        """Apply lexicon replacements to a transcript's words.

        ``check`` (the audio, through Whisper) lets looser candidates in when the
        model prefers them; without it only the spelling rules decide.
        """
        items = [as_word_dict(w) for w in words]
        bands = [self._band(w) for w in items]
        candidates = self._exact_candidates(items, bands)
        candidates += self._fuzzy_candidates(items, bands)
        chosen = _select(candidates)
        if check is None:
            return _apply(items, chosen)
        sure = [c for c in chosen if not c.needs_check]
        asked = [c for c in chosen if c.needs_check]
        verified, checked = self._verified(items, bands, sure, asked, check)
        return _apply(items, sorted(sure + verified, key=lambda c: c.start), checked)

    def _verified(
        self,
        items: list[dict[str, Any]],
        bands: Sequence[int],
        chosen: Sequence[_Candidate],
        asked: Sequence[_Candidate],
        check: AcousticCheck,
    ) -> tuple[list[_Candidate], tuple[Checked, ...]]:
        """Loose candidates clear of ``chosen``, and the ``asked`` ones the spelling
        could not settle, kept when Whisper prefers the term."""
        taken = {k for c in (*chosen, *asked) for k in range(c.start, c.end)}
        loose = [*asked] + [
            c
            for c in self._fuzzy_candidates(items, bands, loose=True)
            if taken.isdisjoint(range(c.start, c.end))
        ]
        if not loose:
            return [], ()
        proposals = [
            Proposal(c.start, c.end, replace_span(items, c.start, c.end, c.term.text)["word"])
            for c in loose
        ]
        gains = check.gains(items, proposals)
        passed = [
            replace(c, gain=round(g, 2))
            for c, g in zip(loose, gains, strict=True)
            if g >= self.options.min_acoustic_gain
        ]
        kept = _select(passed, key=lambda c: (-(c.gain or 0.0), c.end - c.start, c.start))
        return kept, _checked(items, loose, gains, kept)

    def _band(self, word: Mapping[str, Any]) -> int:
        """_SURE, _UNSURE or _DOUBTFUL; words an earlier pass changed count as sure."""
        if "source" in word or not is_low_confidence(word, self.options.sure_probability):
            return _SURE
        if is_low_confidence(word, self.options.max_probability):
            return _DOUBTFUL
        return _UNSURE

    def _spans(
        self, items: Sequence[Mapping[str, Any]], bands: Sequence[int]
    ) -> Iterator[tuple[int, int, str, bool]]:
        """Runs of 1..max_span_words words, not all sure, not crossing punctuation
        except Whisper's commas (the last item says whether the run crosses one)."""
        for i in range(len(items)):
            comma = False
            for j in range(i + 1, min(i + self.options.max_span_words, len(items)) + 1):
                if j - 1 > i and ends_clause(items[j - 2]["word"]):
                    if not ends_with_comma(items[j - 2]["word"]):
                        break
                    comma = True
                if any(band != _SURE for band in bands[i:j]):
                    text = " ".join(split_edges(w["word"])[1] for w in items[i:j])
                    yield i, j, text, comma

    def _exact_candidates(
        self, items: Sequence[Mapping[str, Any]], bands: list[int]
    ) -> list[_Candidate]:
        """Spans that already spell a term: protect them, respell them if needed.

        Protection matters: without it "le bisoprolol" could be "corrected" into
        "bisoprolol" by a fuzzy match that swallows the article. Respelling keeps
        every letter: split words are joined ("counter claim", "a trial
        fibrillation") and missing accents restored, so a sure word may take part.
        """
        found: list[_Candidate] = []
        protected: set[int] = set()
        for i, j, text, comma in self._spans(items, bands):
            term = self.exact.get(compact_key(text)) or self.variants.get(variant_key(text))
            if term is None or self._all_common(text) or (comma and not _word_for_word(text, term)):
                continue
            protected.update(range(i, j))
            # Restore accents Whisper left out, never swap one accent for another:
            # "goutté" and "goutte" are both words.
            if text.casefold() != term.text.casefold() and _may_respell(text, term.text):
                found.append(_Candidate(i, j, term, 100.0))
        for index in protected:
            bands[index] = _SURE
        return found

    def _fuzzy_candidates(
        self, items: Sequence[Mapping[str, Any]], bands: Sequence[int], *, loose: bool = False
    ) -> list[_Candidate]:
        found: list[_Candidate] = []
        for i, j, text, comma in self._spans(items, bands):
            cores = [split_edges(w["word"])[1] for w in items[i:j]]
            match = self._best_match(text, cores, bands[i:j], comma, loose=loose)
            if match is not None:
                term, score, needs_check = match
                found.append(_Candidate(i, j, term, score, needs_check=needs_check))
        return found

    def _all_common(self, text: str) -> bool:
        return all(word in self.common for word in normalise_words(text))

    def _best_match(
        self,
        text: str,
        cores: list[str],
        bands: Sequence[int],
        comma: bool = False,
        *,
        loose: bool = False,
    ) -> tuple[Term, float, bool] | None:
        """The best-scoring term for a phrase and whether only the acoustic check
        may apply it, or None if nothing is close enough.

        A phrase with Whisper's comma inside may only become a term of as many
        words, so the commas fall between the term's own words. ``loose``: the
        thresholds for candidates the acoustic check will decide, which must not
        change a very common word.
        """
        spelled = compact_key(text)
        if len(spelled) < self.options.min_term_chars - 1 or self._all_common(text):
            return None
        if any(ch.isdigit() for ch in spelled):
            return None
        sound = phonetic_key(text, self.lang)
        best: tuple[Term, float, bool] | None = None
        candidates = process.extract(
            spelled,
            self.spellings,
            scorer=fuzz.ratio,
            score_cutoff=self.options.verify_min_spelling_score
            if loose
            else self.options.min_spelling_score,
            limit=8,
        )
        if any(_is_word_family(spelled, choice, self.lang) for choice, _, _ in candidates):
            return None  # a form of a known term ("palpitation"): never another term
        for choice, spelling, index in candidates:
            term = self.terms[index]
            if _is_part_of(text, term):
                continue
            if comma and not _word_for_word(text, term):
                continue
            changed = _changed(cores, term.text.split())
            changed_bands = [band for band, flag in zip(bands, changed, strict=True) if flag]
            if not changed_bands or _SURE in changed_bands:
                continue  # nothing would change, or a sure word would
            score = (spelling + fuzz.ratio(sound, self.sounds[index])) / 2
            if loose:
                if self._changes_common(cores, changed):
                    continue
                needed = self.options.verify_min_score
            else:
                needed = self._needed(choice)
                if _UNSURE in changed_bands:
                    needed = max(needed, self.options.medium_min_score)
            if score >= needed and (best is None or score > best[1]):
                best = (term, score, not loose and self._swallows_common(cores, changed, term))
        return best

    def _swallows_common(self, cores: list[str], changed: list[bool], term: Term) -> bool:
        """Whether the term would join an everyday word into fewer words.

        "et a horté un mur" is ordinary French ("and hit a wall") that spells almost
        "aorte"; a word as common as "a" joined into a term is a guess the spelling
        cannot back, whatever the score, so the acoustic check decides ("by so
        prolol" -> "bisoprolol" still wins there, and without a check the spelling
        rules apply as before). Respelling words one for one ("real function" ->
        "renal function") is left to the scores.
        """
        return len(cores) > len(term.text.split()) and self._changes_common(cores, changed)

    def _changes_common(self, cores: list[str], changed: list[bool]) -> bool:
        return any(
            flag and compact_key(word) in self.common
            for word, flag in zip(cores, changed, strict=True)
        )

    def _needed(self, spelled_term: str) -> float:
        """Short terms ("estate", "stroke") sit close to everyday words: ask for more."""
        if len(spelled_term) >= self.options.short_term_chars:
            return self.options.min_score
        return max(self.options.min_score, self.options.short_term_min_score)


def _checked(
    items: Sequence[Mapping[str, Any]],
    asked: Sequence[_Candidate],
    gains: Sequence[float],
    kept: Sequence[_Candidate],
) -> tuple[Checked, ...]:
    """What the draft records of the acoustic check: every question and its answer."""
    taken = {(c.start, c.end, c.term.key) for c in kept}
    return tuple(
        Checked(
            heard="".join(str(w["word"]) for w in items[c.start : c.end]).strip(),
            term=c.term.text,
            score=round(c.score, 1),
            gain=round(g, 2) if math.isfinite(g) else UNHEARD_GAIN,
            taken=(c.start, c.end, c.term.key) in taken,
        )
        for c, g in zip(asked, gains, strict=True)
    )


def _changed(spoken: list[str], written: list[str]) -> list[bool]:
    """Which spoken words a replacement would change.

    ``spoken`` holds one entry per Whisper word. Words are aligned one to one
    when the counts match, else from both ends ("total nearthroplasty" / "total
    knee arthroplasty" keeps "total").
    """
    same = [compact_key(a) == compact_key(b) for a, b in zip(spoken, written, strict=False)]
    if len(spoken) != len(written):
        tail = [
            compact_key(a) == compact_key(b)
            for a, b in zip(reversed(spoken), reversed(written), strict=False)
        ]
        head = _leading_true(same)
        back = _leading_true(tail)
        same = [k < head or k >= len(spoken) - back for k in range(len(spoken))]
    return [not kept for kept in same]


def _word_for_word(text: str, term: Term) -> bool:
    return len(text.split()) == len(term.text.split()) > 1


def _leading_true(flags: list[bool]) -> int:
    count = 0
    for flag in flags:
        if not flag:
            break
        count += 1
    return count


def _is_matchable(term: Term, options: CorrectionOptions) -> bool:
    return (
        len(compact_key(term.text)) >= options.min_term_chars
        and not _is_abbreviation(term.text)
        and len(term.text.split()) <= options.max_span_words
    )


def _select(
    candidates: list[_Candidate],
    key: Callable[[_Candidate], tuple[float, int, int]] = lambda c: (
        -c.score,
        c.end - c.start,
        c.start,
    ),
) -> list[_Candidate]:
    """Best first (score, else ``key``), shorter span on ties; overlapping ones lose."""
    ordered = sorted(candidates, key=key)
    taken: set[int] = set()
    chosen: list[_Candidate] = []
    for candidate in ordered:
        span = set(range(candidate.start, candidate.end))
        if not span & taken:
            taken |= span
            chosen.append(candidate)
    return sorted(chosen, key=lambda c: c.start)


def _apply(
    items: list[dict[str, Any]], chosen: list[_Candidate], checked: tuple[Checked, ...] = ()
) -> CorrectionResult:
    out: list[dict[str, Any]] = []
    replacements: list[Replacement] = []
    cursor = 0
    for cand in chosen:
        out.extend(items[cursor : cand.start])
        score = round(cand.score, 1)
        marks: dict[str, Any] = {"source": LEXICON_SOURCE, "score": score}
        if cand.gain is not None:
            marks["acoustic_gain"] = cand.gain
        merged = replace_span(items, cand.start, cand.end, cand.term.text, **marks)
        out.append(merged)
        replacements.append(
            Replacement(
                cand.start,
                cand.end,
                merged["original"],
                cand.term.text,
                score,
                LEXICON_SOURCE,
                cand.gain,
            )
        )
        cursor = cand.end
    out.extend(items[cursor:])
    return CorrectionResult(out, tuple(replacements), checked)


def correct_words(
    words: Iterable[Mapping[str, Any] | Any],
    vocabulary: Vocabulary,
    *,
    options: CorrectionOptions | None = None,
) -> CorrectionResult:
    """One-shot lexicon correction; build a LexiconMatcher to reuse the index."""
    return LexiconMatcher.from_vocabulary(vocabulary, options=options).correct(words)
