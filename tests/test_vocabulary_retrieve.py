"""Second pass: terms the first pass nearly heard lead the prompt of the second."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.audiogen import have_espeak, speak
from transcribe.config import ClientConfig, load_config
from transcribe.engine import DecodeOptions, WhisperEngine
from transcribe.pipeline import Dictation, prepare, second_pass, transcribe_file
from transcribe.vocabulary import load_vocabulary
from transcribe.vocabulary.retrieve import refocus, retrieve_terms
from transcribe.workspace import init_workspace


def words(text: str) -> list[dict[str, object]]:
    return [{"word": f" {w}", "probability": 0.5} for w in text.split()]


def test_misheard_terms_are_retrieved_best_first() -> None:
    vocabulary = load_vocabulary("medical", "en")
    found = retrieve_terms(
        vocabulary, words("the ecacardiography showed a tournicate time of"), "en"
    )
    texts = [r.term.text for r in found]
    assert "echocardiography" in texts
    assert "tourniquet" in texts
    assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)
    heard = {r.term.text: r.heard for r in found}
    assert heard["echocardiography"] == "ecacardiography"


def test_common_words_retrieve_nothing() -> None:
    vocabulary = load_vocabulary("legal", "fr")
    assert retrieve_terms(vocabulary, words("et de la pour que le dans"), "fr") == []


def test_french_terms_are_retrieved_by_sound() -> None:
    vocabulary = load_vocabulary("medical", "fr")
    found = retrieve_terms(vocabulary, words("sous bisoprolole et amoxicilline"), "fr")
    assert {"bisoprolol", "amoxicilline"} <= {r.term.text for r in found}


def test_refocus_puts_retrieved_terms_first_without_duplicates() -> None:
    vocabulary = load_vocabulary("medical", "en")
    found = retrieve_terms(vocabulary, words("tournicate"), "en")
    refocused = refocus(vocabulary, found)
    assert refocused.terms[0].text == found[0].term.text
    assert len(refocused) == len(vocabulary)
    assert len({t.key for t in refocused}) == len(refocused)


@pytest.fixture(scope="module")
def engine_and_config(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("retrieve")
    init_workspace(home)
    config = load_config(home)
    return WhisperEngine(config.transcription), config


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is needed to make speech")
def test_second_pass_is_recorded_and_can_be_turned_off(
    engine_and_config: tuple[WhisperEngine, object], tmp_path: Path
) -> None:
    engine, config = engine_and_config
    clip = speak(
        "The echocardiography showed atrial fibrillation. Start bisoprolol and apixaban.",
        tmp_path / "cardio.wav",
    )
    client = ClientConfig(id="c", name="c", language="en", domain="medical")
    dictation = Dictation(client, None, "en")

    transcript, _ = transcribe_file(config, engine, clip, dictation)
    biasing = transcript["biasing"]
    assert biasing["passes"] == 2
    retrieved = [r["text"] for r in biasing["retrieved"]]
    assert retrieved, "the first pass came close to no term"
    prompt_terms = [t["text"] for t in biasing["prompt"]["terms"]]
    assert prompt_terms[: len(retrieved)] == retrieved[: len(prompt_terms)]
    assert biasing["first_pass"]["prompt"] != biasing["prompt"]["text"]
    assert transcript["options"]["initial_prompt"] == biasing["prompt"]["text"]

    one_pass = replace(config, transcription=replace(config.transcription, second_pass=False))
    transcript, _ = transcribe_file(one_pass, engine, clip, dictation)
    assert transcript["biasing"]["passes"] == 1
    assert "retrieved" not in transcript["biasing"]


def decoded(text: str, logprob: float) -> dict[str, object]:
    """A decoding result shaped like WhisperEngine.transcribe's, one segment."""
    return {
        "language": "en",
        "text": text,
        "transcribe_s": 1.0,
        "segments": [
            {
                "start": 0.0,
                "end": 4.0,
                "text": text,
                "avg_logprob": logprob,
                "words": [
                    {"word": f" {w}", "start": 0.0, "end": 0.5, "probability": 0.4}
                    for w in text.split()
                ],
            }
        ],
    }


@pytest.mark.parametrize(("second_logprob", "kept"), [(-0.25, "second"), (-2.0, "first")])
def test_a_derailed_second_pass_is_dropped_for_the_first(
    engine_and_config: tuple[WhisperEngine, object], second_logprob: float, kept: str
) -> None:
    """A prompt can tip Whisper into fluent nonsense (seen on bench/heldout): when it is
    much less sure of the second pass, the first is kept. The second decoding is given,
    not run: a derailment cannot be produced on demand."""
    engine, config = engine_and_config
    client = ClientConfig(id="c", name="c", language="en", domain="medical")
    prepared = prepare(config, engine, Dictation(client, None, "en"))
    first = decoded("the ecacardiography showed a tournicate", -0.4)
    second = decoded("the echocardiography showed a tourniquet", second_logprob)
    calls: list[str | None] = []

    def decode(options: DecodeOptions) -> dict[str, object]:
        calls.append(options.initial_prompt)
        return second

    chosen, result = second_pass(config, engine, prepared, first, decode)
    record = chosen.biasing.record()
    assert calls and "echocardiography" in (calls[0] or "")
    assert record["first_pass"]["kept"] == kept
    assert result is (second if kept == "second" else first)
    assert result["transcribe_s"] == 2.0  # both decodings are counted
