"""The overnight batch: grouping, order, deadline, batched decoding, interruption."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import CLIENT, cli_workspace, set_config
from transcribe.asr import pipeline
from transcribe.asr.pipeline import Dictation, Transcribed, transcribe_audio, transcribe_one
from transcribe.config import Config
from transcribe.runners.batch import BatchOptions, run_batch
from transcribe.stages.transcription import plan_groups
from transcribe.store import Job, JobState

pytestmark = pytest.mark.slow


def job(
    job_id: str,
    *,
    priority: str = "normal",
    author: str = "a",
    language: str = "en",
    client: str = CLIENT,
    duration: float = 20.0,
) -> Job:
    return Job(
        id=job_id,
        client=client,
        state=JobState.RECEIVED,
        source_name=f"{job_id}.wav",
        content_hash=job_id,
        duplicate_of=None,
        inbox_path=None,
        audio_path=None,
        size_bytes=1,
        duration_s=duration,
        language=language,
        priority=priority,
        author=author,
        document_type=None,
        reason=None,
        attempts=0,
        claimed_by=None,
        claimed_at=None,
        created_at=0.0,
        updated_at=0.0,
    )


def test_groups_keep_priorities_apart_and_stay_small() -> None:
    queue = [
        job("u1", priority="urgent"),
        job("u2", priority="urgent", author="b", client="other"),
        job("n1"),
        job("n2", author="b", language="fr"),
        job("n3", duration=580.0),
        *(job(f"m{i}") for i in range(9)),
    ]
    groups = [[j.id for j in g] for g in plan_groups(queue, None)]
    assert groups[:3] == [["u1", "u2"], ["n1", "n2"], ["n3", "m0"]]
    assert [len(g) for g in groups[3:]] == [8]
    assert [[j.id for j in g] for g in plan_groups(queue, 3)] == [["u1", "u2"], ["n1"]]


def test_dictations_decoded_together_come_out_as_when_decoded_alone(
    config: Config, clips: list[Path], engine_factory
) -> None:
    engine = engine_factory(config)
    client = config.client(CLIENT)
    assert client is not None
    items = [(clip, Dictation(client, None, "en")) for clip in clips[:3]]
    together = transcribe_audio(config, engine, items)
    for (clip, dictation), result, keyword in zip(
        items, together, ("patel", "chest", "appointment"), strict=True
    ):
        assert isinstance(result, Transcribed)
        assert keyword in result.transcript["text"].lower(), result.transcript["text"]
        alone = transcribe_one(config, engine, clip, dictation)
        assert alone.transcript["text"] == result.transcript["text"]
        words = [w for s in result.transcript["segments"] for w in s["words"]]
        assert words and words[0]["start"] < 1.0
        assert all(a["start"] <= b["start"] for a, b in itertools.pairwise(words))
        assert words[-1]["end"] <= result.transcript["audio"]["duration_s"] + 0.1


def test_long_files_are_decoded_in_pieces_without_losing_words(
    config: Config, clips: list[Path], engine_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_factory(config)
    client = config.client(CLIENT)
    assert client is not None
    whole = transcribe_one(config, engine, clips[3], Dictation(client, None, "en"))
    monkeypatch.setattr(pipeline, "PIECE_S", 3.0)
    pieced = transcribe_one(config, engine, clips[3], Dictation(client, None, "en"))
    assert pieced.transcript["text"].lower().split() == whole.transcript["text"].lower().split()


def test_a_batch_transcribes_the_inbox_and_writes_a_private_report(
    config: Config, clips: list[Path], engine_factory
) -> None:
    config = set_config(config.paths.home, second_pass="true")  # the shipped default
    folder = config.paths.inbox / CLIENT
    for index in range(2):
        shutil.copyfile(clips[index], folder / f"good{index}.wav")
    report = run_batch(config, lambda: engine_factory(config), BatchOptions())
    assert {j["state"] for j in report.jobs} == {"review"} and len(report.jobs) == 2
    saved = json.loads(Path(report.report_path).read_text())
    assert saved["speed_x_realtime"] > 0 and saved["failures"] == 0
    assert Path(report.report_path).stat().st_mode & 0o077 == 0
    for job in report.jobs:  # the acoustic check ran on the windows
        folder = config.paths.work / "jobs" / job["id"]
        draft = json.loads((folder / "draft.json").read_text())
        assert "seconds" in draft["postprocessing"]["acoustic_check"]


def test_deadline_and_max_jobs_stop_taking_new_jobs(
    config: Config, clips: list[Path], engine_factory
) -> None:
    for index in range(3):
        shutil.copyfile(clips[index], config.paths.inbox / CLIENT / f"d{index}.wav")
        (config.paths.inbox / CLIENT / f"d{index}.wav.json").write_text(
            json.dumps({"author": f"author {index}"})
        )
    past = datetime.now(UTC) - timedelta(minutes=1)
    report = run_batch(config, lambda: engine_factory(config), BatchOptions(until=past))
    assert report.stopped_by == "deadline" and report.jobs == [] and report.pending_left == 3
    report = run_batch(config, lambda: engine_factory(config), BatchOptions(max_jobs=2))
    assert report.stopped_by == "max-jobs" and len(report.jobs) == 2
    assert report.pending_left == 1


def _review_events(database: Path) -> dict[str, int]:
    with sqlite3.connect(database, timeout=30) as db:
        rows = db.execute(
            "SELECT job_id, COUNT(*) FROM events WHERE to_state = 'review' GROUP BY job_id"
        ).fetchall()
    return dict(rows)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "kill"])
def test_an_interrupted_batch_resumes_and_transcribes_each_job_once(
    tmp_path: Path, clips: list[Path], stop: signal.Signals
) -> None:
    home = tmp_path / "h"
    cli = cli_workspace(home, clips)
    for index in range(2):  # two urgent dictations: a group of their own, decoded first
        (home / "inbox" / CLIENT / f"d{index}.wav.json").write_text(
            json.dumps({"priority": "urgent"})
        )
    proc = subprocess.Popen([*cli, "batch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while (
        time.monotonic() < deadline
        and len(_review_events(home / "jobs.db") if (home / "jobs.db").exists() else {}) < 2
    ):
        time.sleep(0.05)
    os.kill(proc.pid, stop)
    proc.wait()
    first = _review_events(home / "jobs.db")
    assert 2 <= len(first) < len(clips), "the batch was not stopped halfway"
    subprocess.run([*cli, "batch"], check=True, capture_output=True)
    final = _review_events(home / "jobs.db")
    assert len(final) == len(clips) and set(final.values()) == {1}
    jobs = json.loads(
        subprocess.run(
            [*cli, "status", "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    assert {j["state"] for j in jobs} == {"review"} and len(jobs) == len(clips)
