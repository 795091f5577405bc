"""Evidence for ambiguous commands in real dictations: repeats, sentence starts, habit.

Whisper base often prints a spoken "period" with no mark and no pause around it
(synthetic and fast speech); these rules decide such cases from the text alone.
"""

from __future__ import annotations

from transcribe.dictation import TimedWord, format_dictation, format_words


def en(text: str) -> str:
    return format_dictation(text, "en")


def no_pauses(text: str) -> list[TimedWord]:
    """Whisper-like words with no gap at all between them (no pause evidence)."""
    return [TimedWord(f" {w}", i * 0.3, i * 0.3 + 0.3) for i, w in enumerate(text.split())]


def test_a_noun_followed_by_the_command_keeps_the_noun() -> None:
    # Whisper's comma sits between the noun and the spoken command; before, both
    # were read as commands and "limitation period" lost its noun.
    text = "we discussed the limitation period, period new paragraph action colon file it"
    assert en(text) == "We discussed the limitation period.\n\nAction: file it"
    assert en("She was well during the postoperative period, period") == (
        "She was well during the postoperative period."
    )


def test_repeated_commands_without_a_noun_still_collapse() -> None:
    assert en("it was fine. Period. Period.") == "It was fine."


def test_a_sentence_start_after_period_is_evidence() -> None:
    text = "he was admitted with pneumonia period He was treated with ceftriaxone"
    assert format_words(no_pauses(text), "en") == (
        "He was admitted with pneumonia. He was treated with ceftriaxone"
    )
    text = "the deed was signed and witnessed period we discussed the clause"
    assert format_words(no_pauses(text), "en") == (
        "The deed was signed and witnessed. We discussed the clause"
    )


def test_a_sentence_start_does_not_beat_a_noun_context() -> None:
    text = "there is a trial period we agreed on"
    assert format_words(no_pauses(text), "en") == "There is a trial period we agreed on"
    assert en("over a period the patient improved") == "Over a period the patient improved"


def test_a_speaker_who_dictates_punctuation_gets_the_benefit_of_the_doubt() -> None:
    dictated = (
        "Dear Sirs comma new paragraph we act for the buyer comma Mr Jones period "
        "the seller must perform period in our view the clause applies"
    )
    assert format_words(no_pauses(dictated), "en") == (
        "Dear Sirs,\n\nWe act for the buyer, Mr Jones. The seller must perform. "
        "In our view the clause applies"
    )
    # someone who never dictates punctuation keeps the word
    plain = "the seller must perform period in our view the clause applies"
    assert format_words(no_pauses(plain), "en") == (
        "The seller must perform period in our view the clause applies"
    )


def test_article_before_whisper_digits_stays_a_word() -> None:
    # "un 110" is an article and a number Whisper already wrote: not "1 110"
    assert format_dictation("causé par un 110 malveillant", "fr") == "Causé par un 110 malveillant"
    assert format_dictation("un virgule cinq milligramme", "fr") == "1,5 mg"
    assert format_dictation("prendre un comprimé", "fr") == "Prendre 1 comprimé"
