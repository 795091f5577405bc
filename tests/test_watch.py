"""The watcher with the real model: formats, slow writers, start-up files, restarts."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import audiogen
from tests.conftest import CLIENT
from transcribe.config import Config
from transcribe.fsutil import sha256_file
from transcribe.runners.watcher import watch
from transcribe.stages.transcription import transcript_path
from transcribe.store import JobState, open_store

pytestmark = pytest.mark.slow


def run_once(config: Config, engine_factory: Callable[[Config], object]):  # type: ignore[no-untyped-def]
    return watch(
        config, once=True, engine_factory=lambda: engine_factory(config), poll_seconds=0.05
    )


def transcript(config: Config, job_id: str) -> dict:
    with open_store(config) as store:
        return json.loads(transcript_path(config, store.get(job_id)).read_text())


def test_every_supported_format_reaches_review_with_word_probabilities(
    config: Config, clips: list[Path], tmp_path: Path, engine_factory
) -> None:
    for index, ext in enumerate(audiogen.ENCODINGS):
        audiogen.encode(clips[index % len(clips)], config.paths.inbox / CLIENT / f"d{index}{ext}")
    summary = run_once(config, engine_factory)
    assert len(summary.transcribed) == len(audiogen.ENCODINGS)
    assert {job.state for job in summary.transcribed} == {JobState.REVIEW}
    for job in summary.transcribed:
        data = transcript(config, job.id)
        words = [w for s in data["segments"] for w in s["words"]]
        assert words, f"{job.source_name}: no words"
        assert all(0 <= w["probability"] <= 1 and w["end"] >= w["start"] for w in words)
        assert data["language"] == "en" and data["model"]["name"] == "base"
        assert data["options"]["vad_filter"] is True and data["audio"]["sha256"] == job.content_hash
        index = int(job.source_name[1:].split(".")[0])
        assert audiogen.KEYWORDS[index % len(clips)] in data["text"].lower(), job.source_name
    assert not any(config.paths.inbox.rglob("*.*"))


def test_a_file_still_being_written_is_not_taken_early(
    home: Path, clips: list[Path], engine_factory
) -> None:
    from tests.conftest import set_config

    config = set_config(home, stable_seconds=1.0)
    data = clips[2].read_bytes()
    target = config.paths.inbox / CLIENT / "slow.wav"
    chunks = [data[i : i + len(data) // 8 + 1] for i in range(0, len(data), len(data) // 8 + 1)]
    target.write_bytes(chunks[0])

    def writer() -> None:
        for chunk in chunks[1:]:
            time.sleep(0.5)  # 8 chunks over ~4 s, each gap shorter than the delay
            with open(target, "ab") as handle:
                handle.write(chunk)

    thread = threading.Thread(target=writer)
    thread.start()
    summary = run_once(config, engine_factory)
    thread.join()
    [job] = summary.transcribed
    assert job.state == JobState.REVIEW and job.size_bytes == len(data)
    assert job.content_hash == sha256_file(clips[2])
    assert audiogen.KEYWORDS[2] in transcript(config, job.id)["text"].lower()


@pytest.mark.both_backends
def test_bad_files_do_not_stop_the_good_ones(
    config: Config, clips: list[Path], engine_factory
) -> None:
    folder = config.paths.inbox / CLIENT
    (folder / "a-corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 50)
    (folder / "b-text.wav").write_text("not audio at all\n")
    shutil.copyfile(clips[3], folder / "c-good.wav")
    summary = run_once(config, engine_factory)
    states = {job.source_name: job.state for job in summary.taken + summary.transcribed}
    assert states["a-corrupt.wav"] == JobState.QUARANTINED
    assert states["b-text.wav"] == JobState.QUARANTINED
    assert states["c-good.wav"] == JobState.REVIEW


def test_continuous_watch_takes_files_present_at_start_and_dropped_later(
    config: Config, clips: list[Path], engine_factory
) -> None:
    shutil.copyfile(clips[4], config.paths.inbox / CLIENT / "early.wav")
    stop = threading.Event()
    result: dict[str, object] = {}

    def run() -> None:
        result["summary"] = watch(
            config,
            once=False,
            engine_factory=lambda: engine_factory(config),
            stop=stop.is_set,
            poll_seconds=0.05,
        )

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)
    shutil.copyfile(clips[5], config.paths.inbox / "cabinet-martin" / "late.wav")
    shutil.copyfile(clips[4], config.paths.inbox / CLIENT / "early-again.wav")
    deadline = time.monotonic() + 120
    with open_store(config) as store:
        while time.monotonic() < deadline:
            states = {j.source_name: j.state for j in store.jobs()}
            if (
                len(states) == 3
                and JobState.RECEIVED not in states.values()
                and JobState.TRANSCRIBING not in states.values()
            ):
                break
            time.sleep(0.2)
    stop.set()
    thread.join(timeout=60)
    assert states == {
        "early.wav": JobState.REVIEW,
        "late.wav": JobState.REVIEW,
        "early-again.wav": JobState.DUPLICATE,
    }


def test_silence_reaches_review_with_an_empty_draft(config: Config, engine_factory) -> None:
    audiogen.silence_wav(config.paths.inbox / CLIENT / "silence.wav", 4.0)
    [job] = run_once(config, engine_factory).transcribed
    assert job.state == JobState.REVIEW
    assert transcript(config, job.id)["text"] == ""
