"""Which language a dictation is transcribed in, and what the secretary is told."""

from __future__ import annotations

from transcribe.asr.language import choose_language

FRENCH = [("fr", 0.97), ("en", 0.01), ("la", 0.005)]
ENGLISH = [("en", 0.96), ("fr", 0.002), ("de", 0.001)]
UNSURE = [("en", 0.72), ("fr", 0.02), ("nl", 0.1)]  # a 1.4 s French clip, measured


def test_what_was_expected_is_transcribed_without_a_word() -> None:
    choice = choose_language("fr", FRENCH, 12.0)
    assert (choice.language, choice.warning) == ("fr", None)


def test_another_language_heard_clearly_is_transcribed_and_said() -> None:
    choice = choose_language("fr", ENGLISH, 20.0)
    assert choice.language == "en"
    assert choice.warning == "dictated in English; the client's language is French"
    by_author = choose_language("en", FRENCH, 20.0, whose="the author's")
    assert by_author.language == "fr"
    assert by_author.warning == "dictated in French; the author's language is English"


def test_an_unclear_language_is_transcribed_as_configured_and_said() -> None:
    choice = choose_language("fr", UNSURE, 1.4)
    assert choice.language == "fr"
    assert choice.warning is not None and choice.warning.startswith("language unclear")
    assert "transcribed in French as configured" in choice.warning


def test_a_confident_detection_on_too_little_speech_does_not_switch() -> None:
    choice = choose_language("fr", ENGLISH, 2.0)
    assert choice.language == "fr" and choice.warning is not None


def test_auto_takes_what_was_heard() -> None:
    assert choose_language(None, ENGLISH, 8.0).language == "en"
    assert choose_language(None, ENGLISH, 8.0).warning is None
    unclear = choose_language(None, [("en", 0.4), ("fr", 0.35)], 8.0)
    assert unclear.language == "en" and "unclear" in (unclear.warning or "")


def test_no_speech_keeps_the_configured_language() -> None:
    choice = choose_language("en", [], 0.0)
    assert choice.language == "en" and choice.warning is None
    assert choice.to_json()["configured"] == "en"
