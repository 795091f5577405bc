"""Client vocabulary: shipped lexicons, prompt biasing, lexicon and learned corrections.

Typical use, once per dictation::

    store = LearningStore(home / "learned.json")
    vocab = load_vocabulary(
        "medical", "fr",
        client_terms=client.vocabulary,          # list of terms or a file path
        author_terms=author.vocabulary,
        approved_terms=approved_terms(home, client.name, author.name),
        learned_terms=store.learned_terms(client.name, author.name),
        base_dir=client_folder,
    )
    plan = build_initial_prompt(vocab, "fr", count_tokens=token_counter_for_model(model_dir))
    # ... transcribe with initial_prompt=plan.text, save plan.to_json() ...
    words = store.apply(words, client.name, author.name).words
    words = LexiconMatcher.from_vocabulary(vocab).correct(words).words
    # ... after approval: store.record(client.name, author.name, draft_words, approved_text)
    # and learn_author_terms(home, client.name, author.name, approved_text, domain=...,
    #                        lang=..., private=letter_field_values)
"""

from __future__ import annotations

from transcribe.vocabulary.authors import (
    AuthorTermOptions,
    AuthorTermStore,
    approved_terms,
    forget_author,
    learn_author_terms,
)
from transcribe.vocabulary.correct import (
    LEXICON_SOURCE,
    CorrectionOptions,
    CorrectionResult,
    LexiconMatcher,
    Replacement,
    correct_words,
)
from transcribe.vocabulary.extract import extract_terms
from transcribe.vocabulary.learning import (
    LEARNED_SOURCE,
    CorrectionPair,
    LearnedEntry,
    LearningOptions,
    LearningStore,
    diff_corrections,
)
from transcribe.vocabulary.lexicon import DOMAINS, LANGUAGES, parse_lexicon, shipped_lexicon
from transcribe.vocabulary.prompt import (
    DEFAULT_BUDGET_TOKENS,
    WHISPER_MAX_PROMPT_TOKENS,
    PromptPlan,
    TokenCounter,
    WhisperTokenCounter,
    build_initial_prompt,
    estimate_tokens,
    token_counter_for_model,
)
from transcribe.vocabulary.terms import Term, TermSource, Vocabulary, load_vocabulary
from transcribe.vocabulary.words import Word

__all__ = [
    "DEFAULT_BUDGET_TOKENS",
    "DOMAINS",
    "LANGUAGES",
    "LEARNED_SOURCE",
    "LEXICON_SOURCE",
    "WHISPER_MAX_PROMPT_TOKENS",
    "AuthorTermOptions",
    "AuthorTermStore",
    "CorrectionOptions",
    "CorrectionPair",
    "CorrectionResult",
    "LearnedEntry",
    "LearningOptions",
    "LearningStore",
    "LexiconMatcher",
    "PromptPlan",
    "Replacement",
    "Term",
    "TermSource",
    "TokenCounter",
    "Vocabulary",
    "WhisperTokenCounter",
    "Word",
    "approved_terms",
    "build_initial_prompt",
    "correct_words",
    "diff_corrections",
    "estimate_tokens",
    "extract_terms",
    "forget_author",
    "learn_author_terms",
    "load_vocabulary",
    "parse_lexicon",
    "shipped_lexicon",
    "token_counter_for_model",
]
