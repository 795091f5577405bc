"""Lexicon correction of doubtful words: fixes near misses, never confident words."""

from __future__ import annotations

from typing import Any

import pytest

from transcribe.errors import ConfigError
from transcribe.vocabulary import (
    CorrectionOptions,
    LexiconMatcher,
    Word,
    correct_words,
    load_vocabulary,
)

LOW, HIGH = 0.2, 0.95


def words(text: str, *probabilities: float) -> list[dict[str, Any]]:
    """Whisper-like words: leading space, one second each."""
    tokens = text.split(" ")
    assert len(tokens) == len(probabilities)
    return [
        {"word": f" {t}", "start": float(i), "end": i + 0.9, "probability": p}
        for i, (t, p) in enumerate(zip(tokens, probabilities, strict=True))
    ]


def joined(result_words: list[dict[str, Any]]) -> str:
    return "".join(w["word"] for w in result_words).strip()


@pytest.fixture(scope="module")
def medical_fr() -> LexiconMatcher:
    return LexiconMatcher.from_vocabulary(load_vocabulary("medical", "fr"))


@pytest.fixture(scope="module")
def medical_en() -> LexiconMatcher:
    return LexiconMatcher.from_vocabulary(load_vocabulary("medical", "en"))


def test_low_confidence_misspelling_is_corrected_and_marked(medical_fr: LexiconMatcher) -> None:
    result = medical_fr.correct(words("sous bisoprolole 5 mg", HIGH, 0.31, HIGH, HIGH))
    assert joined(result.words) == "sous bisoprolol 5 mg"
    fixed = result.words[1]
    assert fixed["source"] == "lexicon"
    assert fixed["original"] == " bisoprolole"
    assert fixed["original_probabilities"] == [0.31]
    assert fixed["probability"] == 0.31  # still shown as doubtful for review
    assert (fixed["start"], fixed["end"]) == (1.0, 1.9)
    assert [(r.original, r.replacement, r.source) for r in result.replacements] == [
        (" bisoprolole", "bisoprolol", "lexicon")
    ]


def test_split_phonetic_phrase_becomes_one_term(medical_en: LexiconMatcher) -> None:
    result = medical_en.correct(words("taking by so prolol daily", HIGH, LOW, LOW, LOW, HIGH))
    assert joined(result.words) == "taking bisoprolol daily"
    assert result.words[1]["original"] == " by so prolol"
    assert (result.words[1]["start"], result.words[1]["end"]) == (1.0, 3.9)


def test_french_apixabane_keeps_punctuation_and_capital(medical_fr: LexiconMatcher) -> None:
    result = medical_fr.correct(words("Apixabane, le matin.", LOW, HIGH, HIGH))
    assert joined(result.words) == "Apixaban, le matin."


def test_the_second_half_of_a_hyphenated_word_keeps_its_hyphen(
    medical_en: LexiconMatcher,
) -> None:
    """Whisper writes "void-codeine" as " void" + "-codeine": replacing the second
    word by the bare term glued it to the first ("voidcodeine")."""
    said = [
        {"word": " avoid", "start": 0.0, "end": 0.5, "probability": 0.9},
        {"word": " void", "start": 0.5, "end": 0.9, "probability": 0.4},
        {"word": "-codein", "start": 0.9, "end": 1.4, "probability": 0.3},
        {"word": " tablets", "start": 1.5, "end": 2.0, "probability": 0.9},
    ]
    assert joined(medical_en.correct(said).words) == "avoid void-codeine tablets"


def test_missing_accents_and_split_words_are_restored(medical_fr: LexiconMatcher) -> None:
    result = medical_fr.correct(words("du furo semide.", HIGH, LOW, LOW))
    assert joined(result.words) == "du furosémide."


def test_high_confidence_words_are_never_changed(medical_fr: LexiconMatcher) -> None:
    draft = words("sous bisoprolole et apixabane", HIGH, HIGH, HIGH, 0.9)
    assert joined(medical_fr.correct(draft).words) == "sous bisoprolole et apixabane"


def test_sure_words_are_never_changed_even_by_a_perfect_match(
    medical_en: LexiconMatcher,
) -> None:
    # 0.9 and above is "sure": not even a near-exact sound match may change it.
    for probability in (0.9, 0.95, 1.0):
        draft = words("clarythromycin and eftreaxone", probability, HIGH, probability)
        assert medical_en.correct(draft).replacements == ()


def test_unsure_words_change_only_for_a_near_exact_match(medical_en: LexiconMatcher) -> None:
    # 0.5-0.9: Whisper base is often fairly sure of a misspelt drug name...
    fixed = medical_en.correct(words("oral clarythromycin daily", HIGH, 0.57, HIGH))
    assert joined(fixed.words) == "oral clarithromycin daily"
    # ...but a looser match that a doubtful word would get is refused.
    loose = words("force mature clause", HIGH, 0.6, HIGH)
    assert medical_en.correct(loose).replacements == ()
    legal = LexiconMatcher.from_vocabulary(load_vocabulary("legal", "en"))
    assert legal.correct(loose).replacements == ()


def test_threshold_is_configurable() -> None:
    vocab = load_vocabulary("medical", "fr")
    draft = words("bisoprolole", 0.7)
    doubtful_only = CorrectionOptions(medium_min_score=101)
    assert correct_words(draft, vocab, options=doubtful_only).replacements == ()
    strict = CorrectionOptions(max_probability=0.8, medium_min_score=101)
    assert joined(correct_words(draft, vocab, options=strict).words) == "bisoprolol"
    assert joined(correct_words(draft, vocab).words) == "bisoprolol"  # unsure band


def test_sure_word_may_stay_inside_a_corrected_phrase(medical_en: LexiconMatcher) -> None:
    # "fraction" is sure and stays as it is; only the doubtful word changes.
    result = medical_en.correct(words("left injection fraction", HIGH, 0.19, 0.97))
    assert joined(result.words) == "left ejection fraction"
    # a sure word that would have to change blocks the phrase
    blocked = medical_en.correct(words("injection friction", 0.19, 0.97))
    assert blocked.replacements == ()


def test_split_term_is_joined_when_one_part_is_doubtful(medical_en: LexiconMatcher) -> None:
    result = medical_en.correct(
        words("shows a trial fibrillation today", HIGH, 0.13, 0.08, 0.82, HIGH)
    )
    assert joined(result.words) == "shows atrial fibrillation today"
    sure = medical_en.correct(words("shows a trial fibrillation", HIGH, HIGH, HIGH, HIGH))
    assert sure.replacements == ()


def test_whisper_comma_inside_a_multi_word_term(medical_en: LexiconMatcher) -> None:
    draft = words("Medial, parapetular approach, period", 0.66, 0.35, 0.95, HIGH)
    assert joined(medical_en.correct(draft).words) == "Medial parapatellar approach, period"
    # a comma never joins two words into a one-word term
    split = medical_en.correct(words("bi, soprolol", LOW, LOW))
    assert split.replacements == ()


def test_british_spelling_of_the_lexicon_is_restored(medical_en: LexiconMatcher) -> None:
    result = medical_en.correct(words("under spinal anesthesia.", HIGH, HIGH, 0.64))
    assert joined(result.words) == "under spinal anaesthesia."
    assert result.words[-1]["source"] == "lexicon"
    # a US spelling the lexicon itself lists is left alone
    assert medical_en.correct(words("the esophagus", HIGH, 0.6)).replacements == ()


def test_phrase_with_one_confident_word_is_left_alone(medical_en: LexiconMatcher) -> None:
    draft = words("by so prolol", LOW, HIGH, LOW)
    assert joined(medical_en.correct(draft).words) == "by so prolol"


@pytest.mark.parametrize(
    "text",
    ["the", "the patient", "and so", "le patient", "de la", "this", "dear"],
)
def test_common_words_are_never_turned_into_terms(text: str) -> None:
    for lang in ("fr", "en"):
        matcher = LexiconMatcher.from_vocabulary(load_vocabulary("medical", lang))
        draft = words(text, *([0.01] * len(text.split())))
        assert matcher.correct(draft).replacements == ()


@pytest.mark.parametrize(
    "text",
    [
        "inspecting",  # word family of "inspection"
        "notice",  # part of "on notice"
        "tenants",  # plural of "tenant"
        "state",  # short term "estate" needs a near-exact match
        "strike",
    ],
)
def test_real_words_near_legal_terms_are_kept(text: str) -> None:
    matcher = LexiconMatcher.from_vocabulary(load_vocabulary("legal", "en"))
    assert matcher.correct(words(text, 0.01)).replacements == ()


def test_correct_term_is_not_swallowed_by_neighbour(medical_fr: LexiconMatcher) -> None:
    draft = words("le bisoprolol est", LOW, LOW, LOW)
    assert medical_fr.correct(draft).replacements == ()


def test_accent_is_never_swapped_for_another() -> None:
    matcher = LexiconMatcher.from_vocabulary(load_vocabulary("medical", "fr"))
    assert matcher.correct(words("goutté", LOW)).replacements == ()


def test_client_term_is_a_correction_target() -> None:
    vocab = load_vocabulary("general", "fr", client_terms=["Benhamou"])
    result = correct_words(words("docteur Benamou", HIGH, LOW), vocab)
    assert joined(result.words) == "docteur Benhamou"


def test_words_already_marked_are_not_touched_again(medical_fr: LexiconMatcher) -> None:
    draft = words("bisoprolole", LOW)
    draft[0]["source"] = "learned"
    assert medical_fr.correct(draft).replacements == ()


def test_accepts_word_objects_and_missing_probability(medical_fr: LexiconMatcher) -> None:
    result = medical_fr.correct([Word(" apixabane", 0.0, 0.5, 0.1)])
    assert joined(result.words) == "apixaban"
    assert medical_fr.correct([{"word": " apixabane"}]).replacements == ()


def test_invalid_options_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        CorrectionOptions(max_probability=0)
    with pytest.raises(ConfigError):
        CorrectionOptions(max_probability=0.95, sure_probability=0.9)
    with pytest.raises(ConfigError):
        CorrectionOptions(min_score=90, medium_min_score=85)
    with pytest.raises(ConfigError):
        CorrectionOptions(min_score=50, min_spelling_score=80)


def test_words_holding_several_words_do_not_break_alignment(medical_en: LexiconMatcher) -> None:
    # a learned correction can leave one word dict holding a phrase
    draft = words("injection fraction", 0.2, 0.95)
    draft.insert(0, {"word": " atrial fibrillation", "start": 0.0, "end": 0.5, "probability": 0.2})
    draft[0]["source"] = "learned"
    assert joined(medical_en.correct(draft).words) == "atrial fibrillation ejection fraction"


def test_a_form_of_a_known_term_never_becomes_another_term(medical_en: LexiconMatcher) -> None:
    """ "palpitation" is the lexicon's "palpitations" in the singular: grammar, not a
    miss, even though "palpation" is close enough in spelling to tempt the matcher."""
    result = medical_en.correct(words("patient with palpitation.", HIGH, HIGH, 0.4))
    assert joined(result.words) == "patient with palpitation." and not result.replacements
