"""From Whisper's words to the draft a secretary reviews, tuned to each client.

Before decoding, :func:`plan_biasing` builds the ``initial_prompt`` from the client's
domain lexicon, the client's and author's own terms and what secretaries taught it.
After decoding, :func:`postprocess` applies, in this order:

1. learned corrections (phrases secretaries fixed repeatedly for this client/author);
2. lexicon correction (only low-confidence words that sound like a vocabulary term);
3. dictation formatting (spoken commands, numbers, units, dates).

Replaced words keep a ``source`` mark ("learned", "lexicon") for the review loop, and
everything used is recorded so a transcript can say how its draft was made.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import ClientConfig
from ..dictation import DictationOptions, TimedWord, format_dictation, format_words
from ..vocabulary import (
    LearningStore,
    LexiconMatcher,
    PromptPlan,
    TokenCounter,
    Vocabulary,
    WhisperTokenCounter,
    build_initial_prompt,
    load_vocabulary,
)
from ..vocabulary.acoustic import AcousticCheck
from ..vocabulary.authors import approved_terms

LEARNED_NAME = "learned.json"
DOMAIN_FOR_LEXICON = {"medical": "medical", "legal": "legal"}


@dataclass(frozen=True)
class Biasing:
    """What biases one dictation: its vocabulary and the prompt built from it (the
    first pass's; a refocused second prompt is the passes' business)."""

    vocabulary: Vocabulary | None
    prompt: PromptPlan | None

    def record(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt.to_json() if self.prompt else None,
            "vocabulary_terms": len(self.vocabulary.terms) if self.vocabulary else 0,
        }


def learning_store(home: Path) -> LearningStore:
    return LearningStore(home / LEARNED_NAME)


def plan_biasing(
    client: ClientConfig,
    author: str | None,
    language: str | None,
    learned: LearningStore | None,
    *,
    home: Path,
    count_tokens: Callable[[], TokenCounter | None],
) -> Biasing:
    """Vocabulary and prompt for one job; no prompt when the language is unknown.

    A French prompt pulls Whisper toward French, so with ``language = "auto"`` and no
    sidecar language we let Whisper detect the language unbiased. ``count_tokens``
    makes the model's token counter, only when there are terms to fit (loading the
    tokenizer costs a tenth of a second).
    """
    if language not in ("fr", "en"):
        return Biasing(vocabulary=None, prompt=None)
    learned_terms = learned.learned_terms(client.id, author) if learned else []
    vocabulary = load_vocabulary(
        DOMAIN_FOR_LEXICON.get(client.domain, "general"),
        language,
        client_terms=list(client.vocabulary),
        author_terms=list(client.author_vocabulary.get(author or "", ())),
        learned_terms=learned_terms,
        approved_terms=approved_terms(home, client.id, author),
        base_dir=home,
    )
    if not vocabulary.terms:
        return Biasing(vocabulary=vocabulary, prompt=None)
    prompt = build_initial_prompt(vocabulary, language, count_tokens=count_tokens())
    return Biasing(vocabulary=vocabulary, prompt=prompt if prompt.terms else None)


@functools.lru_cache(maxsize=4)
def token_counter(model_location: str) -> TokenCounter | None:
    """The model's own tokenizer, so the prompt budget is exact."""
    tokenizer = Path(model_location) / "tokenizer.json"
    return WhisperTokenCounter.from_file(tokenizer) if tokenizer.is_file() else None


@dataclass(frozen=True)
class Draft:
    text: str
    words: list[dict[str, Any]]
    record: dict[str, Any]


def postprocess(
    words: list[dict[str, Any]],
    language: str,
    client: ClientConfig,
    author: str | None,
    *,
    biasing: Biasing,
    learned: LearningStore | None,
    check: AcousticCheck | None = None,
) -> Draft:
    """Learned corrections, then lexicon correction, then dictation formatting.

    ``check`` lets lexicon correction ask Whisper about the audio (acoustic.py);
    without it (``cli.py format``, text only) the spelling rules alone decide.
    """
    record: dict[str, Any] = {"learned": [], "lexicon": [], "formatted": False}
    if learned is not None:
        result = learned.apply(words, client.id, author)
        words, record["learned"] = result.words, [asdict(r) for r in result.replacements]
    if biasing.vocabulary is not None:
        matcher = LexiconMatcher.from_vocabulary(biasing.vocabulary, lang=language)
        result = matcher.correct(words, check)
        words, record["lexicon"] = result.words, [asdict(r) for r in result.replacements]
        if check is not None:
            record["acoustic_check"] = {
                "checked": [asdict(c) for c in result.checked],
                "seconds": round(check.seconds, 3),
            }
    if language in ("fr", "en"):
        timed = [TimedWord(str(w["word"]), float(w["start"]), float(w["end"])) for w in words]
        text = format_words(timed, language, options=DictationOptions(**client.dictation))
        record["formatted"] = True
    else:
        text = "".join(str(w["word"]) for w in words).strip()
    return Draft(text=text, words=words, record=record)


def format_text(text: str, language: str, client: ClientConfig | None = None) -> str:
    """``format`` command: the dictation rules alone, with a client's settings if given."""
    options = DictationOptions(**client.dictation) if client else DictationOptions()
    return format_dictation(text, language, options=options)
