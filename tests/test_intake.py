"""Intake at library depth: what is taken, refused, deduplicated, and crash recovery."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import audiogen
from tests.conftest import CLIENT, set_config
from transcribe.config import Config
from transcribe.fsutil import sha256_file
from transcribe.stages.intake import (
    StabilityTracker,
    finish_pending_intake,
    is_ignored,
    scan_inbox,
    take_in,
)
from transcribe.store import JobState, JobStore, new_job_id, open_store


@pytest.fixture
def store(config: Config) -> Iterator[JobStore]:
    with open_store(config) as opened:
        yield opened


def drop(config: Config, source: Path, name: str, client: str = CLIENT) -> Path:
    target = config.paths.inbox / client / name
    shutil.copyfile(source, target)
    return target


@pytest.mark.parametrize(
    "name",
    [".hidden.wav", "upload.wav.part", "x.tmp", "y.crdownload", "~$letter.wav", "backup.wav~"],
)
def test_files_being_written_or_hidden_are_ignored(name: str) -> None:
    assert is_ignored(Path(name))


def test_stability_needs_unchanged_size_and_mtime_for_the_delay(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"1")
    tracker = StabilityTracker(delay=2.0)
    assert not tracker.observe(path, now=0.0)
    assert not tracker.observe(path, now=1.9)
    with open(path, "ab") as handle:
        handle.write(b"2")
    assert not tracker.observe(path, now=2.5)  # grew: the clock restarts
    assert not tracker.observe(path, now=4.0)
    assert tracker.observe(path, now=4.6)


def test_a_file_untouched_for_the_delay_is_ready_when_first_seen(tmp_path: Path) -> None:
    path = tmp_path / "old.wav"
    path.write_bytes(b"1")
    os.utime(path, (time.time() - 10, time.time() - 10))
    assert StabilityTracker(delay=2.0).observe(path, now=0.0)
    os.utime(path, (time.time() + 60, time.time() + 60))  # clock skew: not trusted
    assert not StabilityTracker(delay=2.0).observe(path, now=0.0)


def test_an_id_drawn_twice_in_a_day_is_drawn_again(
    config: Config, store: JobStore, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids carry 24 random bits a day: a busy secretariat draws one twice. The store
    refused the second job and the watcher stopped; now intake draws again. (The
    random draw is the one thing forced here: a clash cannot be had on demand.)"""
    draws = iter(["a1b2c3", "a1b2c3", "d4e5f6"])
    monkeypatch.setattr("transcribe.store.model.secrets.token_hex", lambda n: next(draws))
    first = take_in(drop(config, clips[0], "one.wav"), config, store).job
    second = take_in(drop(config, clips[1], "two.wav"), config, store).job
    assert first is not None and second is not None
    assert first.id.endswith("-a1b2c3") and second.id.endswith("-d4e5f6")
    assert second.state == JobState.RECEIVED


def test_a_good_file_becomes_a_received_job_and_leaves_the_inbox(
    config: Config, store: JobStore, clips: list[Path]
) -> None:
    dropped = drop(config, clips[0], "letter.wav")
    dropped.with_name("letter.wav.json").write_text(
        json.dumps(
            {
                "author": "Dr Test",
                "patient": "Invented Person",
                "priority": "urgent",
                "document_type": "clinic letter",
                "language": "en",
                "device": "DS-9500",
            }
        )
    )
    result = take_in(dropped, config, store)
    job = result.job
    assert result.outcome == "accepted" and job.state == JobState.RECEIVED
    assert (job.priority, job.author, job.language) == ("urgent", "Dr Test", "en")
    assert job.inbox_path is None and job.duration_s == pytest.approx(5, abs=2)
    stored = config.paths.home / job.audio_path
    assert sha256_file(stored) == sha256_file(clips[0]) == job.content_hash
    sidecar = json.loads((stored.parent / "sidecar.json").read_text())
    assert sidecar["patient"] == "Invented Person" and sidecar["ignored_keys"] == ["device"]
    assert list((config.paths.inbox / CLIENT).iterdir()) == []
    # the patient's name is not in the job store
    assert b"Invented Person" not in config.paths.database.read_bytes()


@pytest.mark.both_backends
def test_same_content_again_is_a_duplicate_not_a_new_job(
    config: Config, store: JobStore, clips: list[Path]
) -> None:
    first = take_in(drop(config, clips[0], "a.wav"), config, store).job
    second = take_in(drop(config, clips[0], "copy-of-a.wav", "cabinet-martin"), config, store)
    assert second.outcome == "duplicate"
    assert second.job.state == JobState.DUPLICATE and second.job.duplicate_of == first.id
    assert [j.id for j in store.jobs(JobState.RECEIVED)] == [first.id]
    assert not any(config.paths.inbox.rglob("*.wav"))


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("random.wav", os.urandom(4000), "cannot read audio"),
        ("notes.wav", b"This is a text file, not audio.\n" * 20, "cannot read audio"),
        ("empty.wav", b"", "empty file"),
        ("letter.docx", b"PK\x03\x04 not a dictation", "unsupported file type"),
        ("playlist.mp3", b"#EXTM3U\n#EXTINF:10,\n/etc/passwd\n#EXT-X-ENDLIST\n", "cannot read"),
        ("concat.mp3", b"ffconcat version 1.0\nfile '/etc/passwd'\n", "cannot read audio"),
    ],
)
def test_bad_files_are_quarantined_and_the_next_file_still_goes_through(
    config: Config, store: JobStore, clips: list[Path], name: str, content: bytes, reason: str
) -> None:
    bad = config.paths.inbox / CLIENT / name
    bad.write_bytes(content)
    result = take_in(bad, config, store)
    assert result.outcome == "quarantined" and reason in result.job.reason
    assert "\n" not in result.job.reason
    kept = config.paths.home / result.job.audio_path
    assert kept.read_bytes() == content and not bad.exists()
    assert take_in(drop(config, clips[1], "good.wav"), config, store).outcome == "accepted"


def test_truncated_compressed_file_is_refused(
    config: Config, store: JobStore, clips: list[Path], tmp_path: Path
) -> None:
    m4a = audiogen.encode(clips[0], tmp_path / "x.m4a")
    truncated = config.paths.inbox / CLIENT / "cut.m4a"
    truncated.write_bytes(m4a.read_bytes()[: m4a.stat().st_size // 3])
    assert take_in(truncated, config, store).outcome == "quarantined"


def test_symlinks_are_refused_and_their_target_is_untouched(
    config: Config, store: JobStore, clips: list[Path]
) -> None:
    link = config.paths.inbox / CLIENT / "link.wav"
    link.symlink_to(clips[0])
    result = take_in(link, config, store)
    assert result.outcome == "quarantined" and "symbolic link" in result.job.reason
    assert clips[0].is_file() and not link.is_symlink()
    assert (config.paths.home / result.job.audio_path).is_symlink()


@pytest.mark.parametrize(
    ("sidecar", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "must hold a JSON object"),
        ('{"priority": "asap"}', "priority must be 'urgent' or 'normal'"),
        ('{"language": "de"}', "language must be fr, en or auto"),
        ('{"author": 42}', "author must be text"),
    ],
)
def test_a_wrong_sidecar_quarantines_audio_and_sidecar_with_the_reason(
    config: Config, store: JobStore, clips: list[Path], sidecar: str, reason: str
) -> None:
    audio = drop(config, clips[0], "d.mp3")
    audio.with_name("d.mp3.json").write_text(sidecar)
    result = take_in(audio, config, store)
    assert result.outcome == "quarantined" and reason in result.job.reason
    folder = (config.paths.home / result.job.audio_path).parent
    assert sorted(p.name for p in folder.iterdir()) == ["d.mp3", "d.mp3.json"]
    assert list((config.paths.inbox / CLIENT).iterdir()) == []


def test_oversized_sidecar_is_refused(config: Config, store: JobStore, clips: list[Path]) -> None:
    audio = drop(config, clips[0], "e.wav")
    audio.with_name("e.json").write_text(json.dumps({"author": "x", "pad": "y" * 70_000}))
    assert "over the 64 KB cap" in take_in(audio, config, store).job.reason


def test_unknown_client_and_loose_files_are_quarantined(
    config: Config, store: JobStore, clips: list[Path]
) -> None:
    (config.paths.inbox / "dr-nobody").mkdir()
    unknown = drop(config, clips[0], "a.wav", "dr-nobody")
    loose = config.paths.inbox / "loose.wav"
    shutil.copyfile(clips[1], loose)
    assert sorted(scan_inbox(config.paths.inbox)) == sorted([unknown, loose])
    assert "unknown client folder 'dr-nobody'" in take_in(unknown, config, store).job.reason
    assert "not in a client folder" in take_in(loose, config, store).job.reason


def test_caps_are_checked_before_decoding(home: Path, clips: list[Path]) -> None:
    config = set_config(home, max_file_mb=0.01, max_duration_min=10)
    with open_store(config) as store:
        result = take_in(drop(config, clips[0], "big.wav"), config, store)
    assert "over the 0 MB cap" in result.job.reason
    config = set_config(home, max_file_mb=100, max_duration_min=0.01)
    with open_store(config) as store:
        result = take_in(drop(config, clips[1], "long.wav"), config, store)
    assert "over the 0 min cap" in result.job.reason


def _dead_worker() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{os.uname().nodename}:{proc.pid}"


def _committed_but_not_moved(config: Config, store: JobStore, source: Path) -> str:
    """The exact on-disk state a crash leaves between the commit and the move."""
    job_id = new_job_id()
    store.insert_job(
        id=job_id,
        client=CLIENT,
        source_name=source.name,
        content_hash=sha256_file(source),
        inbox_path=os.path.relpath(source, config.paths.home),
        audio_path=f"work/jobs/{job_id}/audio.wav",
        claimed_by=_dead_worker(),
        claimed_at=1e9,
    )
    return job_id


@pytest.mark.both_backends
def test_crash_after_commit_before_move_is_finished_without_duplicate(
    config: Config, store: JobStore, clips: list[Path]
) -> None:
    source = drop(config, clips[0], "a.wav")
    job_id = _committed_but_not_moved(config, store, source)
    assert take_in(source, config, store).outcome == "skipped"  # never a duplicate of itself
    assert finish_pending_intake(config, store, timeout_s=3600) == [job_id]
    job = store.get(job_id)
    assert job.inbox_path is None and not source.exists()
    assert sha256_file(config.paths.home / job.audio_path) == job.content_hash
    assert len(store.jobs()) == 1


@pytest.mark.both_backends
def test_crash_after_move_before_clearing_is_finished(
    config: Config, store: JobStore, clips: list[Path]
) -> None:
    source = drop(config, clips[0], "a.wav")
    job_id = _committed_but_not_moved(config, store, source)
    target = config.paths.home / store.get(job_id).audio_path
    target.parent.mkdir(parents=True)
    os.rename(source, target)
    assert finish_pending_intake(config, store, timeout_s=3600) == [job_id]
    assert store.get(job_id).inbox_path is None and target.is_file()
    assert (target.parent / "sidecar.json").is_file()


@pytest.mark.both_backends
def test_live_intake_of_another_process_is_left_alone(
    config: Config, store: JobStore, clips: list[Path]
) -> None:
    source = drop(config, clips[0], "a.wav")
    job_id = _committed_but_not_moved(config, store, source)
    store.update(job_id, claimed_by=f"{os.uname().nodename}:{os.getppid()}", claimed_at=9e9)
    assert finish_pending_intake(config, store, timeout_s=3600) == []
    assert source.exists()
