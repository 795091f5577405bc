"""The hostile-input corpus (issue 8), generated here: nothing blocks, crashes or is lost.

Every entry is made on the spot (hand-written WAV headers, PyAV, zipfile, mkfifo, a
socket, a sparse file). Each goes through the intake API alone (which case broke),
then all of them together into one inbox beside a good clip: one real ``watch --once``
must quarantine each with a one-line reason that holds no path, leave alone what it
must not open, transcribe the good ones, and keep the store sound. Then: truncated
files of every format, writers that keep writing after (or during) intake, a full
disk, and a 10-hour file refused from its header. The cases tests/test_intake.py
already covers (empty, random, text, playlist to /etc/passwd, docx, truncated m4a,
symlink, bad or huge sidecar, unknown client) are not repeated.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import stat
import struct
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from tests import audiogen
from tests.conftest import CLIENT
from transcribe.config import Config
from transcribe.fsutil import TMP_PREFIX, sha256_file
from transcribe.runners.watcher import WatchSummary, watch
from transcribe.stages.intake import finish_pending_intake, is_ignored, scan_inbox, take_in
from transcribe.stages.sidecar import display_name
from transcribe.stages.transcription import transcript_path
from transcribe.store import Job, JobState, open_store

pytestmark = pytest.mark.slow

HANG_GUARD_S = 240  # far beyond a normal run: only a blocked watcher gets there
GOOD = "zz-good.wav"  # sorts last: every hostile entry is met before it


# ----------------------------------------------------------------- making hostile files


def wav_header(rate: int, channels: int, bits: int, data: int) -> bytes:
    """A 44-byte PCM WAV header written by hand, so it can say anything (1 Hz...)."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data)
    )


def wav_bytes(rate: int, channels: int, *, bits: int = 16, data: int = 3200) -> bytes:
    return wav_header(rate, channels, bits, data) + b"\x00" * data


def sparse_silence(path: Path, hours: float, rate: int = 8000) -> None:
    """Hours of real digital silence in no disk space: the PCM zeros are a hole."""
    data = int(hours * 3600 * rate) * 2
    with open(path, "wb") as handle:
        handle.write(wav_header(rate, 1, 16, data))
        handle.truncate(44 + data)


def flac_declaring_years(clip: Path, tmp: Path) -> bytes:
    """A real FLAC whose STREAMINFO claims 2^36-1 samples (years of audio)."""
    data = bytearray(audiogen.encode(clip, tmp / "declared.flac").read_bytes())
    assert data[:4] == b"fLaC"
    data[21] |= 0x0F  # low 4 bits of byte 21 and bytes 22-25: total samples
    data[22:26] = b"\xff\xff\xff\xff"
    return bytes(data)


def zipped(clip: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(clip, "dictation.wav")
    return buffer.getvalue()


def silence(index: int) -> bytes:
    """A short silent WAV, a different length per index (different content hashes)."""
    frames = 8000 + 160 * index
    return wav_bytes(16000, 1, data=frames * 2)


def hiss(path: Path, seconds: float, rate: int = 16000) -> Path:
    """Faint white noise (-60 dBFS): no speech for the VAD to find."""
    samples = np.random.default_rng(8).integers(-32, 33, int(seconds * rate), dtype=np.int16)
    path.write_bytes(wav_header(rate, 1, 16, samples.nbytes) + samples.tobytes())
    return path


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path) -> None:
    """A Unix socket in the inbox (bound relative to its folder: paths over 108 bytes
    cannot be bound)."""
    here = Path.cwd()
    os.chdir(path.parent)
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()
    finally:
        os.chdir(here)


# ----------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    """One inbox entry: its name, how to make it, and what must become of it."""

    name: str
    make: Callable[[Path], None]
    outcome: JobState | None  # None: refused by being left alone in the inbox
    reason: str = ""

    @property
    def shown(self) -> str:
        return display_name(self.name)


def content(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def with_sidecar(index: int, sidecar: str | None) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(silence(index))
        if sidecar is None:
            os.mkfifo(path.with_name(path.name + ".json"))  # a FIFO sidecar: never opened
        else:
            path.with_name(path.name + ".json").write_text(sidecar, encoding="utf-8")

    return make


def long_names() -> list[str]:
    """The longest names ext4 allows (255 bytes), in ASCII and in 2- and 3-byte UTF-8."""
    ascii_name = "L" * 251 + ".wav"
    multibyte = "€" * 83 + "é" + ".wav"
    assert len(os.fsencode(ascii_name)) == len(os.fsencode(multibyte)) == 255
    return [ascii_name, multibyte]


HOSTILE_NAMES = [
    "a\\..\\..\\etc\\passwd.wav",
    "%2e%2e%2fetc%2fpasswd.wav",
    "．．／etc／passwd.wav",  # fullwidth full stops and solidus
    "\u2024\u2024\u2215etc\u2215passwd.wav",  # one-dot leaders, division slash
    "report\u202egnp.wav",  # right-to-left override: shows as "reportvaw.png"
    "two\nlines.wav",
    "bell\x07esc\x1b[2J.wav",
    os.fsdecode(b"dict\xe9e-latin1.wav"),  # not UTF-8: a Windows-1252 upload
    *long_names(),
]


def playlist(template: str, clips: list[Path], tmp: Path) -> Callable[[Path], None]:
    """A playlist named .mp3 that points at a real local dictation: had FFmpeg followed
    it, the job would have been transcribed instead of quarantined."""

    def make(path: Path) -> None:
        elsewhere = tmp / "outside.wav"
        shutil.copyfile(clips[1], elsewhere)
        path.write_text(template.format(elsewhere), encoding="utf-8")

    return make


def corpus(clips: list[Path], tmp: Path) -> list[Case]:
    """Every case, each made only when its ``make`` runs (names are needed at collection)."""
    deep = "[" * 30_000 + "]" * 30_000
    cases = [
        Case(
            "archive.zip",
            lambda path: path.write_bytes(zipped(clips[0])),
            JobState.QUARANTINED,
            "'.zip'",
        ),
        Case(
            "zipped.wav",
            lambda path: path.write_bytes(zipped(clips[0])),
            JobState.QUARANTINED,
            "cannot read",
        ),
        Case(
            "hls-local.mp3",
            playlist("#EXTM3U\n#EXTINF:10,\n{}\n#EXT-X-ENDLIST\n", clips, tmp),
            JobState.QUARANTINED,
            "cannot read",
        ),
        Case(
            "concat-local.mp3",
            playlist("ffconcat version 1.0\nfile '{}'\n", clips, tmp),
            JobState.QUARANTINED,
            "cannot read",
        ),
        Case(
            "ten-hours.wav",
            lambda path: sparse_silence(path, 10),
            JobState.QUARANTINED,
            "lasts 600 min, over the 240 min cap",
        ),
        Case(
            "declared-years.flac",
            lambda path: path.write_bytes(flac_declaring_years(clips[2], tmp)),
            JobState.QUARANTINED,
            "over the 240 min cap",
        ),
        Case(
            "declared-4gb.wav",  # the header claims 4 GB of samples, the file holds 1 s:
            content(wav_header(16000, 1, 16, 0xFFFFFF00) + silence(46)[44:]),  # what is there
            JobState.REVIEW,
        ),
        Case("rate-1hz.wav", content(wav_bytes(1, 1)), JobState.QUARANTINED, "rate 1 Hz"),
        Case("rate-0hz.wav", content(wav_bytes(0, 1)), JobState.QUARANTINED, "cannot read"),
        Case(
            "rate-4ghz.wav",
            content(wav_bytes(4_000_000_000, 1)),
            JobState.QUARANTINED,
            "cannot read",
        ),
        Case("7ch-1hz.wav", content(wav_bytes(1, 7)), JobState.QUARANTINED, "rate 1 Hz"),
        Case("0ch.wav", content(wav_bytes(16000, 0)), JobState.QUARANTINED, "channel count 0"),
        Case(
            "255ch.wav", content(wav_bytes(16000, 255)), JobState.QUARANTINED, "channel count 255"
        ),
        Case("0bit.wav", content(wav_bytes(16000, 1, bits=0)), JobState.QUARANTINED, "decoder"),
        Case("pipe.wav", make_fifo, JobState.QUARANTINED, "not a regular file"),
        Case("socket.wav", make_socket, JobState.QUARANTINED, "not a regular file"),
        Case(
            "dangling.wav",
            lambda path: path.symlink_to(tmp / "nowhere.wav"),
            JobState.QUARANTINED,
            "symbolic link",
        ),
        Case("..evil.wav", content(silence(99)), None),  # dot name: hidden, never taken
        Case(
            "deep.wav",
            with_sidecar(40, '{"author": ' + deep + "}"),
            JobState.QUARANTINED,
            "not valid JSON",
        ),
        Case(
            "bigint.wav",
            with_sidecar(41, '{"author": "x", "n": ' + "9" * 20_000 + "}"),
            JobState.QUARANTINED,
            "not valid JSON",
        ),
        Case(
            "surrogate.wav",
            with_sidecar(42, '{"author": "\\ud800"}'),
            JobState.QUARANTINED,
            "not valid Unicode text",
        ),
        Case(
            "deep-priority.wav",
            with_sidecar(43, '{"priority": ' + "[" * 500 + "]" * 500 + "}"),
            JobState.QUARANTINED,
            "priority must be 'urgent' or 'normal'",
        ),
        Case(
            "control.wav",
            with_sidecar(44, '{"author": "Dr\\u001b[31m Evil\\u202e", "x\\u0000": 1}'),
            JobState.REVIEW,
        ),
        Case("fifo-sidecar.wav", with_sidecar(45, None), JobState.REVIEW),
    ]
    cases += [
        Case(name, content(silence(index)), JobState.REVIEW)
        for index, name in enumerate(HOSTILE_NAMES)
    ]
    return cases


CASE_NAMES = [case.name for case in corpus([], Path())]  # makes nothing


@pytest.mark.parametrize("name", CASE_NAMES, ids=[display_name(n)[:32] for n in CASE_NAMES])
def test_each_entry_alone_through_the_intake_api(
    config: Config, clips: list[Path], tmp_path: Path, name: str
) -> None:
    """One case at a time, at library depth: which case broke, without the model."""
    [case] = [c for c in corpus(clips, tmp_path) if c.name == name]
    path = config.paths.inbox / CLIENT / case.name
    case.make(path)
    if case.outcome is None:
        assert is_ignored(path) and path not in set(scan_inbox(config.paths.inbox))
        return
    with open_store(config) as store:
        job = take_in(path, config, store).job
    assert job is not None and job.source_name == case.shown
    if case.outcome == JobState.QUARANTINED:
        assert job.state == JobState.QUARANTINED and case.reason in (job.reason or "")
        assert_clean_reason(job, config, tmp_path)
    else:
        assert job.state == JobState.RECEIVED, job.reason
        assert sha256_file(config.paths.home / (job.audio_path or "")) == job.content_hash
    assert not (path.exists() or path.is_symlink()) and no_temp_files(config)
    assert_store_sound(config)


# ----------------------------------------------------------------- running the watcher


def run_once_guarded(config: Config, engine_factory: Callable[[Config], object]) -> WatchSummary:
    """``watch --once`` in a thread: if it blocks (a FIFO opened for reading waits for a
    writer forever), every FIFO in the workspace is opened for writing to free it and
    the test fails instead of hanging."""
    result: dict[str, object] = {}

    def run() -> None:
        result["summary"] = watch(
            config, once=True, engine_factory=lambda: engine_factory(config), poll_seconds=0.05
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=HANG_GUARD_S)
    if thread.is_alive():
        for path in config.paths.home.rglob("*"):
            if stat.S_ISFIFO(path.lstat().st_mode):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout=30)
        pytest.fail("the watcher blocked on an inbox entry")
    assert "summary" in result, "the watcher crashed (see the thread's traceback above)"
    return result["summary"]  # type: ignore[return-value]


def jobs_by_source(config: Config) -> dict[str, Job]:
    with open_store(config) as store:
        jobs = store.jobs()
    by_source = {job.source_name: job for job in jobs}
    assert len(by_source) == len(jobs), "two jobs for one inbox entry"
    return by_source


def assert_clean_reason(job: Job, config: Config, tmp: Path) -> None:
    reason = job.reason or ""
    assert reason and "\n" not in reason and "\r" not in reason, job.source_name
    assert str(tmp) not in reason and str(config.paths.home) not in reason, reason
    assert len(reason) < 400, reason


def assert_consistent_audio(config: Config, job: Job) -> None:
    """The audio the job holds is exactly the content its hash and transcript name."""
    stored = config.paths.home / (job.audio_path or "")
    assert sha256_file(stored) == job.content_hash, job.source_name
    transcript = json.loads(transcript_path(config, job).read_text(encoding="utf-8"))
    assert transcript["audio"]["sha256"] == job.content_hash


def assert_store_sound(config: Config) -> None:
    with sqlite3.connect(config.paths.database) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def no_temp_files(config: Config) -> bool:
    return not any(config.paths.work.rglob(f"{TMP_PREFIX}*"))


# ----------------------------------------------------------------- the tests


def test_hostile_corpus_in_one_inbox(
    config: Config, clips: list[Path], tmp_path: Path, engine_factory
) -> None:
    """Everything at once: quarantined whole (same inode, same size) with its reason,
    the dot name and the FIFO sidecar left alone, the rest and the good clip in review."""
    folder = config.paths.inbox / CLIENT
    cases = corpus(clips, tmp_path)
    before: dict[str, tuple[int, int]] = {}
    for case in cases:
        case.make(folder / case.name)
        st = (folder / case.name).lstat()
        before[case.name] = (st.st_ino, st.st_size)
    audiogen.speak("Dear Doctor Patel, thank you.", folder / GOOD)  # short: Whisper is slow

    run_once_guarded(config, engine_factory)

    jobs = jobs_by_source(config)
    good = jobs.pop(GOOD)
    assert good.state == JobState.REVIEW
    assert_consistent_audio(config, good)
    text = json.loads(transcript_path(config, good).read_text(encoding="utf-8"))["text"]
    assert audiogen.KEYWORDS[0] in text.lower()
    for case in cases:
        if case.outcome is None:
            assert case.shown not in jobs and (folder / case.name).exists(), case.name
            continue
        job = jobs.pop(case.shown)
        assert job.state == case.outcome, (case.name, job.reason)
        if case.outcome == JobState.QUARANTINED:
            assert case.reason in (job.reason or ""), (case.name, job.reason)
            assert_clean_reason(job, config, tmp_path)
            kept = (config.paths.home / (job.audio_path or "")).lstat()
            assert (kept.st_ino, kept.st_size) == before[case.name], case.name  # moved, whole
        else:
            assert_consistent_audio(config, job)
    assert not jobs, f"jobs nobody dropped: {sorted(jobs)}"
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(["..evil.wav", "fifo-sidecar.wav.json"])
    assert no_temp_files(config)
    assert_store_sound(config)
    assert_names_cope(config)


def assert_names_cope(config: Config) -> None:
    """The store, the job's files and ``status`` cope with every name: escaped, one line,
    valid UTF-8; sidecar text fields lose their control characters."""
    jobs = jobs_by_source(config)
    for name in HOSTILE_NAMES:
        assert display_name(name).isprintable() and display_name(name) in jobs, name
    assert {"two\\nlines.wav", "report\\u202egnp.wav", "dict\\xe9e-latin1.wav"} <= set(jobs)
    assert "€" * 83 + "é.wav" in jobs and "L" * 251 + ".wav" in jobs
    control = jobs["control.wav"]
    assert control.author == "Dr [31m Evil"
    job_sidecar = (config.paths.home / (control.audio_path or "")).with_name("sidecar.json")
    assert json.loads(job_sidecar.read_text(encoding="utf-8"))["ignored_keys"] == ["x\\x00"]
    runner = CliRunner()
    listed = runner.invoke(app, ["--home", str(config.paths.home), "status", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {row["source"] for row in json.loads(listed.output)} == set(jobs)
    table = runner.invoke(app, ["--home", str(config.paths.home), "status"])
    assert table.exit_code == 0, table.output
    assert not {"\x1b", "\x07", "\u202e"} & set(table.output)


# what a file cut to 40% of its bytes must become, per format
TRUNCATED = {
    ".wav": JobState.REVIEW,  # PCM: the first 40% is still valid audio
    ".mp3": JobState.REVIEW,  # independent frames: decodes up to the cut
    ".ogg": JobState.REVIEW,  # Ogg pages: decodes up to the last whole page
    ".opus": JobState.REVIEW,
    ".flac": JobState.REVIEW,  # frames with their own sync code and CRC
    ".webm": JobState.REVIEW,  # Matroska clusters: decodes up to the cut
    ".amr": JobState.REVIEW,  # fixed-size frames after a 6-byte magic
    ".m4a": JobState.QUARANTINED,  # the moov atom (the index) is at the end: nothing to read
}


def test_truncated_files_of_each_format(config: Config, tmp_path: Path, engine_factory) -> None:
    """Cut at 40%: a format that still decodes reaches review with what is there, one
    that cannot is quarantined; none crashes the watcher, none is lost. The source is
    faint hiss: every file is still decoded whole (for the VAD), Whisper has nothing to
    do, and unlike digital silence it does not compress to a few bytes."""
    folder = config.paths.inbox / CLIENT
    source = hiss(tmp_path / "hiss.wav", 4.0)
    for ext in TRUNCATED:
        whole = audiogen.encode(source, tmp_path / f"whole{ext}").read_bytes()
        (folder / f"cut{ext}").write_bytes(whole[: len(whole) * 4 // 10])
        (folder / f"head{ext}").write_bytes(whole[:64])  # the header and nothing else
    run_once_guarded(config, engine_factory)
    jobs = jobs_by_source(config)
    assert len(jobs) == 2 * len(TRUNCATED) and not any(folder.iterdir())
    for ext, expected in TRUNCATED.items():
        job = jobs[f"cut{ext}"]
        assert job.state == expected, (ext, job.reason)
        if expected == JobState.REVIEW:
            assert_consistent_audio(config, job)
    for name, job in jobs.items():
        assert job.state in (JobState.REVIEW, JobState.QUARANTINED), (name, job.state)
        if job.state == JobState.QUARANTINED:
            assert_clean_reason(job, config, tmp_path)
    assert_store_sound(config)


def hold_open(path: Path, data: bytes) -> int:
    """A sender that wrote the whole file and keeps its descriptor, dated in the past
    so the stability check lets it through at once."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    past = time.time_ns() - 3_600_000_000_000
    os.utime(fd, ns=(past, past))
    return fd


def test_a_writer_holding_its_file_open_cannot_change_the_taken_audio(
    config: Config, clips: list[Path], engine_factory
) -> None:
    """The writer truncates and rewrites through its descriptor after intake: the job
    must keep the bytes it hashed (silence), and transcribe those, not the speech the
    writer put there afterwards."""
    first, other = silence(7), clips[4].read_bytes()
    fd = hold_open(config.paths.inbox / CLIENT / "held.wav", first)
    try:
        with open_store(config) as store:
            result = take_in(config.paths.inbox / CLIENT / "held.wav", config, store)
        assert result.outcome == "accepted"
        os.ftruncate(fd, 0)
        os.pwrite(fd, other, 0)
    finally:
        os.close(fd)
    run_once_guarded(config, engine_factory)
    job = jobs_by_source(config)["held.wav"]
    assert job.state == JobState.REVIEW
    assert job.content_hash == hashlib.sha256(first).hexdigest()
    assert_consistent_audio(config, job)
    assert json.loads(transcript_path(config, job).read_text(encoding="utf-8"))["text"] == ""


def test_a_file_rewritten_during_intake_is_left_or_taken_whole(
    config: Config, clips: list[Path]
) -> None:
    """A writer keeps truncating and rewriting (and resetting mtime) while intake reads:
    the file is left in the inbox as still changing (and taken whole once the writer
    stops), or taken whole, or quarantined by the probe; never a mix."""
    versions = [clips[0].read_bytes(), clips[1].read_bytes()]
    hashes = {hashlib.sha256(v).hexdigest() for v in versions}
    folder = config.paths.inbox / CLIENT
    reasons: set[str] = set()
    with open_store(config) as store:
        for attempt in range(4):
            path = folder / f"busy{attempt}.wav"
            fd = hold_open(path, versions[0])
            stop = threading.Event()
            writer = threading.Thread(target=rewrite_until, args=(fd, versions, stop))
            writer.start()
            try:
                result = take_in(path, config, store)
            finally:
                stop.set()
                writer.join()
                os.close(fd)
            if result.outcome == "skipped":  # still changing: left for a later look
                assert result.job is None and path.is_file()
                result = take_in(path, config, store)  # the writer has stopped now
                assert result.outcome in ("accepted", "duplicate")  # whole, one version
            job = result.job
            assert job is not None and result.outcome in ("accepted", "duplicate", "quarantined")
            if result.outcome == "duplicate":  # the same version an earlier attempt took
                assert job.content_hash in hashes
                continue
            stored = config.paths.home / (job.audio_path or "")
            if result.outcome == "accepted":
                assert job.content_hash in hashes and sha256_file(stored) == job.content_hash
            else:  # caught empty or cut by the probe: all one-line reasons
                reasons.add(job.reason or "")
                assert job.content_hash is None and stored.is_file()  # kept, whatever it is
    assert all(reason and "\n" not in reason for reason in reasons)
    assert not any(folder.iterdir()) and no_temp_files(config)


def rewrite_until(fd: int, versions: list[bytes], stop: threading.Event) -> None:
    past = time.time_ns() - 3_600_000_000_000
    turn = 0
    while not stop.is_set():
        turn += 1
        os.ftruncate(fd, 0)
        os.pwrite(fd, versions[turn % 2], 0)
        os.utime(fd, ns=(past, past))


@contextmanager
def tmpfs_work(config: Config, options: str) -> Iterator[Config]:
    """The work folder on a small tmpfs: a disk that is really full, for the kernel."""
    work = config.paths.work
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"{options},mode=0700", "tmpfs", str(work)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield config
    finally:
        subprocess.run(["umount", str(work)], check=True)


def remount(config: Config, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(config.paths.work)], check=True)


@pytest.fixture
def small_work(config: Config) -> Iterator[Config]:
    with tmpfs_work(config, "size=256k") as small:
        yield small


def test_a_full_disk_at_intake_leaves_the_file_in_the_inbox(small_work: Config) -> None:
    """No space for the job's copy: not the sender's fault, so no quarantine and no job;
    no half copy kept; the next file that fits is taken, and the big one once freed."""
    config = small_work
    folder = config.paths.inbox / CLIENT
    big = audiogen.silence_wav(folder / "big.wav", 10.0)  # 320 KB
    small = audiogen.silence_wav(folder / "small.wav", 2.0)
    big_hash = sha256_file(big)
    with open_store(config) as store:
        assert take_in(big, config, store).outcome == "skipped"
        assert store.jobs() == [] and sha256_file(big) == big_hash
        assert no_temp_files(config)
        assert take_in(small, config, store).outcome == "accepted"
        remount(config, "size=4m")
        job = take_in(big, config, store).job
    assert job is not None and job.state == JobState.RECEIVED
    assert sha256_file(config.paths.home / (job.audio_path or "")) == big_hash
    assert sorted(folder.iterdir()) == []
    assert_store_sound(config)


def test_a_full_disk_after_the_commit_is_finished_by_recovery(config: Config) -> None:
    """Four inodes: the intake lock, jobs/ and the staged copy fit, the job's folder
    does not, so the fault comes after the job row is committed. The claim is let go,
    the file stays in the inbox, and the next recovery pass finishes the job."""
    path = audiogen.silence_wav(config.paths.inbox / CLIENT / "late.wav", 1.0)
    expected = sha256_file(path)
    with tmpfs_work(config, "size=4m,nr_inodes=4"), open_store(config) as store:
        assert take_in(path, config, store).outcome == "skipped"
        [job] = store.jobs()
        assert (job.state, job.claimed_by, job.content_hash) == (JobState.RECEIVED, None, expected)
        assert job.inbox_path is not None and path.is_file() and no_temp_files(config)
        assert take_in(path, config, store).outcome == "skipped"  # never a duplicate of itself
        assert store.claim_next() is None  # not transcribed before its audio is in place
        remount(config, "nr_inodes=64")
        assert finish_pending_intake(config, store, timeout_s=3600) == [job.id]
        job = store.get(job.id)
        assert job.inbox_path is None and not path.exists()
        assert sha256_file(config.paths.home / (job.audio_path or "")) == expected
        assert (config.paths.home / (job.audio_path or "")).with_name("sidecar.json").is_file()
    assert_store_sound(config)


def bytes_read() -> int:
    """Bytes this process has read through read(2) and pread(2) so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_ten_hours_are_refused_from_the_header_without_reading_the_file(
    config: Config,
) -> None:
    """The duration cap is checked on the header before the file is read: the 576 MB
    of a 10-hour file are never hashed nor copied."""
    path = config.paths.inbox / CLIENT / "ten-hours.wav"
    sparse_silence(path, 10)
    size = path.stat().st_size
    with open_store(config) as store:
        before = bytes_read()
        job = take_in(path, config, store).job
        read = bytes_read() - before
    assert job is not None and "lasts 600 min, over the 240 min cap" in (job.reason or "")
    assert read < size // 10, f"{read} of {size} bytes read"
    kept = config.paths.home / (job.audio_path or "")
    assert kept.stat().st_size == size and no_temp_files(config)
