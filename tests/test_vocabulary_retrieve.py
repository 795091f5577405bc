"""Second pass: terms the first pass nearly heard lead the prompt of the second."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.audiogen import have_espeak, speak
from transcribe.asr import pipeline
from transcribe.asr.engine import WhisperEngine
from transcribe.asr.pipeline import Dictation, transcribe_one
from transcribe.config import ClientConfig, Config, load_config
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


def test_a_near_miss_carries_how_sure_whisper_was_of_what_it_heard() -> None:
    vocabulary = load_vocabulary("medical", "en")
    heard = words("a real fibrillation and a tournicate")
    heard[1]["probability"], heard[2]["probability"] = 0.04, 0.9
    heard[5]["probability"] = 0.97
    found = {r.term.text: r for r in retrieve_terms(vocabulary, heard, "en")}
    assert found["atrial fibrillation"].probability == 0.04  # the lowest of its words
    assert found["tourniquet"].probability == 0.97
    assert found["tourniquet"].to_json()["probability"] == 0.97


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
    engine_and_config: tuple[WhisperEngine, Config],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, config = engine_and_config
    clip = speak(
        "The echocardiography showed atrial fibrillation. Start bisoprolol and apixaban.",
        tmp_path / "cardio.wav",
    )
    client = ClientConfig(id="c", name="c", language="en", domain="medical")
    dictation = Dictation(client, None, "en")
    settings = pipeline.pass_settings

    def gate(below: float) -> None:
        monkeypatch.setattr(
            pipeline, "pass_settings", lambda *a: replace(settings(*a), refocus_below=below)
        )

    gate(1.0)  # every window with a near-miss, however sure Whisper was of it
    transcript = transcribe_one(config, engine, clip, dictation).transcript
    biasing = transcript["biasing"]
    retrieved = [r["text"] for r in biasing["retrieved"]]
    assert retrieved, "the first pass came close to no term"
    assert all(0.0 <= r["probability"] <= 1.0 for r in biasing["retrieved"])
    refocused = [t["text"] for t in biasing["refocused_prompt"]["terms"]]
    assert refocused[: len(retrieved)] == retrieved[: len(refocused)]
    [window] = transcript["windows"]
    assert window["refocused"]["prompt"] == "refocused"
    assert window["kept"] in ("first", "refocused")
    assert set(window["refocused"]["terms_heard"]) <= set(retrieved)

    gate(-1.0)  # no near-miss is that doubtful: nothing is decoded again, and it says why
    transcript = transcribe_one(config, engine, clip, dictation).transcript
    assert [r["text"] for r in transcript["biasing"]["retrieved"]] == retrieved
    assert transcript["biasing"]["refocused_prompt"] is None
    [window] = transcript["windows"]
    assert window["refocused"]["skipped"].startswith("near-misses only over words")
    assert window["kept"] == "first"

    one_pass = replace(config, transcription=replace(config.transcription, second_pass=False))
    transcript = transcribe_one(one_pass, engine, clip, dictation).transcript
    assert transcript["biasing"]["refocused_prompt"] is None
    assert "refocused" not in transcript["windows"][0]
