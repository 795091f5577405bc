"""Whisper prompt building: ranking, budget, real tokenizer when the model is there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transcribe.errors import ConfigError, ModelError
from transcribe.vocabulary import (
    WHISPER_MAX_PROMPT_TOKENS,
    TermSource,
    WhisperTokenCounter,
    build_initial_prompt,
    estimate_tokens,
    load_vocabulary,
    token_counter_for_model,
)

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "whisper-base"
TOKENIZER = MODEL_DIR / "tokenizer.json"


def word_counter(text: str) -> int:
    """A stand-in tokenizer: one token per word or punctuation mark."""
    return len(text.replace(",", " ,").replace(".", " .").replace(":", " :").split())


def rich_vocabulary(lang: str = "fr"):
    return load_vocabulary(
        "medical",
        lang,
        client_terms=["Clinique du Parc", "Dr Martin"],
        author_terms=["Dr Lefèvre"],
        learned_terms=["Pr Benhamou"],
    )


def test_prompt_fits_budget_with_custom_counter() -> None:
    plan = build_initial_prompt(
        rich_vocabulary(), "fr", budget_tokens=40, count_tokens=word_counter
    )
    assert plan.token_count == word_counter(" " + plan.text) <= 40
    assert plan.counter == "custom"
    assert plan.skipped > 0
    assert plan.text.startswith("Compte rendu médical. Vocabulaire : Dr Lefèvre, Pr Benhamou")
    assert plan.text.endswith(".")


def test_prompt_ranks_author_learned_client_then_domain() -> None:
    plan = build_initial_prompt(rich_vocabulary(), "fr", count_tokens=word_counter)
    sources = [t.source for t in plan.terms]
    assert sources[:4] == [
        TermSource.AUTHOR,
        TermSource.LEARNED,
        TermSource.CLIENT,
        TermSource.CLIENT,
    ]
    assert set(sources[4:]) == {TermSource.DOMAIN}
    assert [t.text for t in plan.terms][4:6] == ["bisoprolol", "apixaban"]


def test_prompt_records_exactly_the_terms_used() -> None:
    plan = build_initial_prompt(rich_vocabulary(), "fr", count_tokens=word_counter)
    record = json.loads(json.dumps(plan.to_json()))
    listed = ", ".join(term["text"] for term in record["terms"])
    assert record["text"] == f"{plan.lead_in} {listed}."
    assert record["terms"][0] == {"text": "Dr Lefèvre", "source": "author"}


def test_long_term_is_skipped_but_shorter_later_terms_still_fit() -> None:
    vocab = load_vocabulary("general", "en", author_terms=["a " * 30 + "end", "short"])
    plan = build_initial_prompt(vocab, "en", budget_tokens=20, count_tokens=word_counter)
    assert [t.text for t in plan.terms] == ["short"]
    assert plan.skipped == 1


def test_empty_vocabulary_gives_empty_prompt() -> None:
    plan = build_initial_prompt(load_vocabulary("general", "fr"), "fr")
    assert plan.text == "" and plan.terms == () and plan.token_count == 0


def test_budget_above_whisper_limit_is_rejected() -> None:
    with pytest.raises(ConfigError, match="223"):
        build_initial_prompt(rich_vocabulary(), "fr", budget_tokens=WHISPER_MAX_PROMPT_TOKENS + 1)


def test_estimate_is_the_fallback_and_stays_under_budget() -> None:
    assert token_counter_for_model(None) is estimate_tokens
    plan = build_initial_prompt(rich_vocabulary("en"), "en")
    assert plan.counter == "estimate"
    assert 0 < plan.token_count <= plan.budget_tokens


def test_corrupt_tokenizer_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError):
        token_counter_for_model(tmp_path)


@pytest.mark.skipif(not TOKENIZER.is_file(), reason="models/whisper-base is not assembled")
@pytest.mark.parametrize(("domain", "lang"), [("medical", "fr"), ("legal", "en")])
def test_prompt_fits_whisper_limit_with_real_tokenizer(domain: str, lang: str) -> None:
    counter = token_counter_for_model(MODEL_DIR)
    assert isinstance(counter, WhisperTokenCounter)
    vocab = load_vocabulary(domain, lang, author_terms=["Dr Lefèvre"])
    plan = build_initial_prompt(vocab, lang, count_tokens=counter)
    assert plan.counter == "whisper-tokenizer"
    real = counter(" " + plan.text)
    assert real == plan.token_count <= plan.budget_tokens < WHISPER_MAX_PROMPT_TOKENS
    assert len(plan.terms) >= 20
    # the fallback estimate must never under-count a real prompt
    assert estimate_tokens(" " + plan.text) >= real
