"""Transcription never fails silently: the wrong language, loops, doubled sentences.

Real model, real watcher. A loop cannot be produced on demand (it depends on the
model, the prompt and the audio), so two tests make the decoder return one, the only
fake here; everything after it (detection, re-decoding, marking, the review, the
approval) is real.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests import audiogen
from tests.conftest import CLIENT
from tests.test_faults import EN_FIELDS  # the riverside-clinic letter's fields
from transcribe.asr import passes
from transcribe.asr.decode import decode_file
from transcribe.asr.decoder import WindowText
from transcribe.asr.loops import find_runaway
from transcribe.config import Config, Limits
from transcribe.draft import load_draft
from transcribe.errors import StateError
from transcribe.review import approve_job
from transcribe.review.session import ReviewSession
from transcribe.review.settings import ReviewSettings
from transcribe.runners.watcher import watch
from transcribe.stages.transcription import draft_path, transcript_path
from transcribe.status import list_jobs, load_job_draft
from transcribe.store import JobState, open_store

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parent.parent
FRENCH_SAMPLE = PROJECT / "samples" / "udhr_preamble_fr.mp3"  # see samples/README.md
FRENCH_CLIENT = "cabinet-martin"  # a French medical practice in the demo workspace
ENGLISH_CLIENT = CLIENT  # riverside-clinic, English
LOOP = "périndopril, " * 12


def run_once(config: Config, engine_factory: Callable[[Config], object]) -> list[Any]:
    summary = watch(
        config, once=True, engine_factory=lambda: engine_factory(config), poll_seconds=0.05
    )
    return summary.transcribed


def french_excerpt(tmp_path: Path) -> Path:
    """The first 25 s of the shipped French recording, as a WAV."""
    samples = decode_file(FRENCH_SAMPLE, Limits())[: 25 * 16000]
    out = tmp_path / "declaration.wav"
    subprocess.run(
        [
            "sox",
            "-t",
            "raw",
            "-r",
            "16000",
            "-e",
            "floating-point",
            "-b",
            "32",
            "-c",
            "1",
            "-",
            str(out),
        ],
        input=samples.tobytes(),
        check=True,
    )
    return out


def test_a_dictation_in_another_language_is_transcribed_in_it_and_flagged(
    config: Config, tmp_path: Path, engine_factory
) -> None:
    english = audiogen.speak(
        "Dear Doctor Martin, thank you for seeing this patient. Her blood pressure is "
        "well controlled and the chest pain has resolved. Please review her in six weeks.",
        config.paths.inbox / FRENCH_CLIENT / "english.wav",
    )
    french = french_excerpt(tmp_path)
    french.rename(config.paths.inbox / ENGLISH_CLIENT / french.name)
    jobs = {job.source_name: job for job in run_once(config, engine_factory)}
    assert {job.state for job in jobs.values()} == {JobState.REVIEW}

    rows = {row["source"]: row for row in list_jobs(config)}
    assert rows[english.name]["language"] == "en"
    assert rows[english.name]["warnings"] == [
        {"code": "language", "text": "dictated in English; the client's language is French"}
    ]
    assert rows["declaration.wav"]["language"] == "fr"
    assert rows["declaration.wav"]["warnings"][0]["code"] == "language"

    shown = load_job_draft(config, jobs[english.name].id)
    assert shown["warnings"] == rows[english.name]["warnings"]
    assert "blood pressure" in shown["text"].lower() and "périndopril" not in shown["text"]
    declared = load_job_draft(config, jobs["declaration.wav"].id)["text"].lower()
    # Whisper base hears the LibriVox reading well, not perfectly ("déglaration")
    assert "universelle des droits de l'homme" in declared
    assert "considérant que la reconnaissance" in declared


def looping(only_prompted: bool) -> Callable[..., list[WindowText]]:
    """The real decoder, whose (prompted) decodings come back as the issue's loop."""
    real = passes.decode_windows

    def decode(model: Any, windows: Any, request: Any) -> list[WindowText]:
        texts = real(model, windows, request)
        if only_prompted and not request.prompt:
            return texts
        return [_as_loop(text) for text in texts]

    return decode


def _as_loop(text: WindowText) -> WindowText:
    start, end = text.window.start_s, text.window.end_s
    words = LOOP.split()
    step = (end - start) / len(words)
    timed = [
        {
            "word": f" {w}",
            "start": start + i * step,
            "end": start + (i + 1) * step,
            "probability": 0.9,
        }
        for i, w in enumerate(words)
    ]
    return passes.with_words(text, timed)


def test_a_loop_is_decoded_again_without_the_prompt(
    config: Config, clips: list[Path], engine_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passes, "decode_windows", looping(only_prompted=True))
    # the case: a first pass with the vocabulary prompt that echoes it
    config = replace(config, transcription=replace(config.transcription, first_pass="vocabulary"))
    audiogen.encode(clips[4], config.paths.inbox / CLIENT / "pressure.wav")
    [job] = run_once(config, engine_factory)
    data = json.loads(transcript_path(config, job).read_text())
    runaways = [r for w in data["windows"] for r in w.get("runaways", [])]
    assert runaways and runaways[0]["kind"] == "repeat"
    assert runaways[0]["action"] == "decoded again (no prompt)"
    assert "pressure" in data["text"].lower() and "périndopril" not in data["text"]
    assert data["unreliable"] == [] and job.warnings == ()


def looping_job(
    config: Config, clips: list[Path], engine_factory, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """A dictation whose every decoding, prompted or not, comes back as a loop."""
    monkeypatch.setattr(passes, "decode_windows", looping(only_prompted=False))
    audiogen.encode(clips[4], config.paths.inbox / CLIENT / "pressure.wav")
    [job] = run_once(config, engine_factory)
    return job


def test_a_loop_that_stays_is_marked_and_approval_waits_until_it_is_looked_at(
    config: Config, clips: list[Path], engine_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = looping_job(config, clips, engine_factory, monkeypatch)
    assert [w["code"] for w in job.warnings] == ["unreliable"]
    draft = load_draft(draft_path(config, job))
    [passage] = draft["unreliable"]
    assert passage["kind"] == "repeat" and not passage["checked"]
    fields = EN_FIELDS

    with pytest.raises(StateError, match="1 unreliable passage"):
        approve_job(config, job.id, fields=fields, reviewer="sec@test")

    settings = ReviewSettings()
    session = ReviewSession.open(config, job.id, reviewer="sec@test", settings=settings)
    try:
        session.cursor = len(session.text)
        assert session.unchecked_passages() == 1
        session.next_doubtful()  # the unreliable passage comes first, and is now seen
        assert session.unchecked_passages() == 0
    finally:
        session.close()
    assert load_draft(draft_path(config, job))["unreliable"][0]["checked"] is True
    approved = approve_job(config, job.id, fields=fields, reviewer="sec@test")
    assert approved.state == JobState.APPROVED


def test_accepting_unreliable_passages_without_looking_is_explicit_and_audited(
    config: Config, clips: list[Path], engine_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = looping_job(config, clips, engine_factory, monkeypatch)
    fields = EN_FIELDS
    approve_job(config, job.id, fields=fields, reviewer="sec@test", accept_unreliable=True)
    with open_store(config) as store:
        actions = [e["action"] for e in store.events(job.id)]
    assert "accept-unreliable" in actions


def test_no_sentence_comes_out_twice_where_passes_and_cuts_meet(
    config: Config, engine_factory, tmp_path: Path
) -> None:
    """Two dictations whose windows meet mid-letter, both passes on, the hallucination
    cuts on: no phrase of three words or more is written twice in a row."""
    again = [audiogen.SENTENCES[i] for i in (2, 0, 4, 1, 3)]  # no sentence twice in a row
    letter = " ".join(audiogen.SENTENCES[:5]) + " " + " ".join(again)
    audiogen.speak(letter, config.paths.inbox / CLIENT / "long.wav")
    audiogen.speak(
        "The echocardiography showed atrial fibrillation. Start bisoprolol and apixaban.",
        config.paths.inbox / CLIENT / "cardio.wav",
    )
    config = replace(config, transcription=replace(config.transcription, second_pass=True))
    for job in run_once(config, engine_factory):
        data = json.loads(transcript_path(config, job).read_text())
        assert len(data["windows"]) >= 1
        words = [w["word"] for s in data["segments"] for w in s["words"]]
        # repeats only: the letter says some sentences twice, so the text compresses
        assert find_runaway(words, "") is None, data["text"]
        draft = load_draft(draft_path(config, job))
        assert find_runaway(draft["text"].split(), "") is None, draft["text"]
