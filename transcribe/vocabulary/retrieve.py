"""Which vocabulary terms a first decoding pass nearly heard: the second pass's prompt.

Whisper's prompt holds about 200 tokens, some 35 terms, while a domain lexicon has
a thousand. A prompt ranked once for the whole domain helps a cardiology letter and
does nothing for a gastroscopy report. So the pipeline decodes twice: the first
pass's words are matched, loosely, against every term (spelling and sound-alike
scores, as in lexicon correction), and the terms that come close ("ecacardiography",
"tournicate", "mid-azolam") lead the prompt of the second pass, which then hears
them in context. The match is loose on purpose: a term in the prompt is a
suggestion Whisper weighs against the audio, not a replacement, so a false
candidate costs little; a missed one costs the term.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process

from transcribe.vocabulary.correct import common_words
from transcribe.vocabulary.normalise import compact_key, normalise_words, phonetic_key
from transcribe.vocabulary.terms import Term, Vocabulary
from transcribe.vocabulary.words import split_edges

DEFAULT_MIN_SCORE = 70.0
_MAX_SPAN_WORDS = 4
_MIN_SPAN_CHARS = 4
_CANDIDATES_PER_SPAN = 10


@dataclass(frozen=True)
class Retrieved:
    """A term the first pass came close to, with its best score, where it was heard,
    and how sure Whisper was of the words heard there (the lowest word probability)."""

    term: Term
    score: float
    heard: str
    probability: float = 1.0
    end: float | None = None  # when the words heard there end (the file's clock)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.term.text,
            "score": round(self.score, 1),
            "heard": self.heard,
            "probability": round(self.probability, 4),
        }


def retrieve_terms(
    vocabulary: Vocabulary,
    words: Iterable[Mapping[str, Any]],
    lang: str,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
) -> list[Retrieved]:
    """Terms whose spelling and sound come within ``min_score`` of a run of words.

    Best score first. A run of only common words ("in the", "de la") never
    retrieves anything: every short term would otherwise come close to one.
    """
    terms = list(vocabulary)
    spellings = [compact_key(t.text) for t in terms]
    sounds = [phonetic_key(t.text, lang) for t in terms]
    common = {compact_key(w) for w in common_words(lang)}
    words = list(words)
    cores = [split_edges(str(w["word"]))[1] for w in words]
    best: dict[int, Retrieved] = {}
    for i in range(len(cores)):
        for j in range(i + 1, min(i + _MAX_SPAN_WORDS, len(cores)) + 1):
            text = " ".join(c for c in cores[i:j] if c)
            spelled = compact_key(text)
            if len(spelled) < _MIN_SPAN_CHARS or all(w in common for w in normalise_words(text)):
                continue
            sound = phonetic_key(text, lang)
            for _, spelling, index in process.extract(
                spelled,
                spellings,
                scorer=fuzz.ratio,
                score_cutoff=min_score - 15,
                limit=_CANDIDATES_PER_SPAN,
            ):
                score = (spelling + fuzz.ratio(sound, sounds[index])) / 2
                if score >= min_score and score > getattr(best.get(index), "score", 0.0):
                    best[index] = Retrieved(
                        terms[index], score, text, _lowest(words[i:j]), _end(words[j - 1])
                    )
    return sorted(best.values(), key=lambda r: -r.score)


def _end(word: Mapping[str, Any]) -> float | None:
    end = word.get("end")
    return float(end) if isinstance(end, int | float) else None


def _lowest(words: Sequence[Mapping[str, Any]]) -> float:
    """The lowest probability Whisper gave the words (a word without one counts as sure)."""
    return min((float(w.get("probability", 1.0)) for w in words), default=1.0)


def refocus(vocabulary: Vocabulary, retrieved: Iterable[Retrieved]) -> Vocabulary:
    """The vocabulary re-ranked: retrieved terms first, then the usual rank order."""
    lead = [r.term for r in retrieved]
    keys = {t.key for t in lead}
    rest = [t for t in vocabulary if t.key not in keys]
    return Vocabulary(vocabulary.domain, vocabulary.lang, (*lead, *rest))
