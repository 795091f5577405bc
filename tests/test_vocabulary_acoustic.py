"""Lexicon correction with Whisper as the judge: the real model scores the real audio.

The words are what Whisper wrote for an espeak clip, with one word planted the way
Whisper misspells rare terms: far enough from the term that spelling rules alone
leave it, close enough for the acoustic check to ask the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.audiogen import have_espeak, speak
from transcribe.asr.decode import decode_file
from transcribe.asr.decoder import Request, decode_windows, score_window
from transcribe.asr.engine import WhisperEngine
from transcribe.asr.pipeline import Dictation, acoustic_check, transcribe_one
from transcribe.asr.windows import Window, memory_windows
from transcribe.config import ClientConfig, Config, load_config
from transcribe.vocabulary import LexiconMatcher, load_vocabulary
from transcribe.vocabulary.acoustic import AcousticCheck, Proposal
from transcribe.workspace import init_workspace

pytestmark = pytest.mark.skipif(not have_espeak(), reason="espeak-ng is needed to make speech")

# Whisper's verdicts on synthetic speech move a little with the CPU's int8 kernels: this
# sentence and rate leave "terniquet" -> "tourniquet" a margin of 2-3 nats over the
# check's 1.0 on the machines we run (at 140 wpm without "at all", 0.7 on one of them)
SENTENCE = (
    "Tourniquet time was seventy minutes. The patella was resurfaced. There was no strain at all."
)
CLIENT = ClientConfig(id="c", name="c", language="en", domain="medical")


@dataclass(frozen=True)
class Setup:
    config: Config
    engine: WhisperEngine
    clip: Path
    windows: list[Window]  # the clip's speech windows (one)
    prompt: str  # the prompt the pipeline's first pass decoded the clip with
    heard: list[dict[str, Any]]  # Whisper's words for the clip, unprompted, with their window


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    home = tmp_path_factory.mktemp("acoustic")
    init_workspace(home)
    config = load_config(home)
    engine = WhisperEngine(config.transcription)
    clip = speak(SENTENCE, home / "op-note.wav", voice="en-gb", rate=150)
    transcript = transcribe_one(config, engine, clip, Dictation(CLIENT, None, "en")).transcript
    windows = memory_windows(0, decode_file(clip, config.limits))
    [plain] = decode_windows(engine.model, windows, Request("en"))
    heard = [{**w, "window": 0} for w in plain.words]
    return Setup(config, engine, clip, windows, transcript["options"]["initial_prompt"], heard)


def plant(words: list[dict[str, Any]], index: int, spelled: str) -> list[dict[str, Any]]:
    """Word ``index`` misspelled as ``spelled`` and made doubtful, timings kept."""
    planted = [dict(w) for w in words]
    planted[index].update(word=f" {spelled}", probability=0.3)
    return planted


def check_for(setup: Setup) -> AcousticCheck:
    return acoustic_check(setup.engine, setup.windows, "en", {0: setup.prompt})


def test_whisper_scores_the_spoken_sentence_above_near_misses(setup: Setup) -> None:
    [window] = setup.windows
    texts = [
        " Tourniquet time was 70 minutes. The patella was resurfaced.",
        " Terniquet time was 70 minutes. The fatella was resurfaced.",
        " Tournament time was 70 minutes. The patella was resurfaced.",
    ]
    for prompt in (None, setup.prompt):
        scores = score_window(setup.engine.model, window, texts, "en", prompt)
        assert scores[0] > scores[1] and scores[0] > scores[2], prompt


def test_a_term_too_far_for_spelling_is_taken_when_whisper_prefers_it(setup: Setup) -> None:
    assert "tourniquet" in setup.heard[0]["word"].lower()
    words = plant(setup.heard, 0, "terniquet")
    matcher = LexiconMatcher.from_vocabulary(load_vocabulary("medical", "en"))
    alone = matcher.correct(words)
    assert "terniquet" in "".join(w["word"] for w in alone.words).lower()  # spelling says no

    checked = matcher.correct(words, check_for(setup))
    text = "".join(w["word"] for w in checked.words)
    assert "tourniquet" in text.lower() and "terniquet" not in text.lower()
    [change] = [r for r in checked.replacements if r.replacement == "tourniquet"]
    assert change.original.strip().lower().startswith("terniquet")
    assert change.acoustic_gain is not None and change.acoustic_gain >= 1.0
    marked = next(w for w in checked.words if "tourniquet" in w["word"].lower())
    assert marked["source"] == "lexicon" and marked["acoustic_gain"] == change.acoustic_gain


def test_a_term_whisper_does_not_hear_is_left_and_recorded(setup: Setup) -> None:
    """A doubtful "strain" (what was said) loosely matches the term "sprain"; Whisper,
    on this audio, must turn the term down, and the draft must say it asked."""
    last = next(i for i, w in enumerate(setup.heard) if "train" in w["word"])
    words = plant(setup.heard, last, "strain")
    checked = LexiconMatcher.from_vocabulary(load_vocabulary("medical", "en")).correct(
        words, check_for(setup)
    )
    [asked] = [c for c in checked.checked if c.heard == "strain"]
    assert asked.term == "sprain" and not asked.taken and asked.gain < 1.0
    assert checked.words[last]["word"] == " strain"


def test_common_and_sure_words_are_never_put_to_the_check(setup: Setup) -> None:
    vocabulary = load_vocabulary("legal", "en")
    assert any(t.text == "our client" for t in vocabulary)
    words = [
        {"word": " The", "start": 0.0, "end": 0.3, "probability": 0.3},
        {"word": " client", "start": 0.3, "end": 0.8, "probability": 0.95},
        {"word": " signed", "start": 0.8, "end": 1.2, "probability": 0.98},
    ]
    asked: list[Proposal] = []

    class Recorder(AcousticCheck):
        def gains(self, words, proposals):  # type: ignore[override]
            asked.extend(proposals)
            return super().gains(words, proposals)

    result = LexiconMatcher.from_vocabulary(vocabulary).correct(
        words, Recorder(check_for(setup).scorer)
    )
    assert [w["word"] for w in result.words] == [" The", " client", " signed"]
    assert not any(p.start == 0 for p in asked)  # "The" -> "our" is never proposed


def test_the_pipeline_records_the_check_and_can_turn_it_off(setup: Setup) -> None:
    config = setup.config
    on = replace(config, transcription=replace(config.transcription, second_pass=False))
    draft = transcribe_one(on, setup.engine, setup.clip, Dictation(CLIENT, None, "en")).draft
    record = draft.record["acoustic_check"]
    assert record["seconds"] >= 0 and isinstance(record["checked"], list)

    off = replace(on, transcription=replace(on.transcription, acoustic_check=False))
    draft = transcribe_one(off, setup.engine, setup.clip, Dictation(CLIENT, None, "en")).draft
    assert "acoustic_check" not in draft.record


def test_words_of_no_window_are_scored_on_a_clip_of_the_windows(setup: Setup) -> None:
    """Words without their window (a ``format``-like path) are scored on audio cut from
    the windows; the verdict is the same as on the window."""
    words = [
        {k: v for k, v in w.items() if k != "window"} for w in plant(setup.heard, 0, "terniquet")
    ]
    matcher = LexiconMatcher.from_vocabulary(load_vocabulary("medical", "en"))
    checked = matcher.correct(words, check_for(setup))
    assert "tourniquet" in "".join(w["word"] for w in checked.words).lower()
