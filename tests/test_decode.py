"""Decoding in a capped child process: the samples plain faster-whisper would decode,
and hostile files stopped by the kernel's limits, the clock or the child's own count,
each with a one-line reason that quarantines its job while good files go through."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from tests import audiogen
from tests.conftest import CLIENT, PROJECT, cli_workspace, set_config
from transcribe.asr.decode import decode_file, decode_stream, probe_file, read_ranges
from transcribe.config import Limits
from transcribe.errors import AudioError

# --- hostile files, made on the spot ----------------------------------------------


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def silent_flac(
    path: Path, *, rate: int, channels: int, seconds: float, declared_s: float, block: int
) -> Path:
    """A valid FLAC of digital silence, a few bytes per frame, whose STREAMINFO says it
    lasts ``declared_s``: a lying header, and at a high rate a decompression bomb."""
    frames = -(-int(rate * seconds) // block)
    info = struct.pack(">HH", block, block) + bytes(6)
    info += ((rate << 44) | ((channels - 1) << 41) | (15 << 36) | int(rate * declared_s)).to_bytes(
        8, "big"
    )
    data = bytearray(b"fLaC\x80" + len(info + bytes(16)).to_bytes(3, "big") + info + bytes(16))
    for number in range(frames):
        # fixed blocksize, 16-bit block size and rate (in tens of Hz) at the end, 16 bits
        head = bytes([0xFF, 0xF8, 0x7E, ((channels - 1) << 4) | 0x08])
        head += chr(number).encode("utf-8", "surrogatepass")  # FLAC's frame-number coding
        head += struct.pack(">HH", block - 1, rate // 10)
        frame = head + bytes([_crc8(head)]) + bytes(3 * channels)  # CONSTANT 0 subframes
        data += frame + struct.pack(">H", _crc16(frame))
    path.write_bytes(data)
    return path


def wide_wav(path: Path, megabytes: int) -> Path:
    """A sparse 7.1 WAV of 64-bit float samples of unknown length: small on disk, but
    decoding it the faster-whisper way needs a few hundred MB."""
    guid = struct.pack("<H", 3) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHH", 0xFFFE, 8, 16000, 16000 * 64, 64, 64)
    fmt += struct.pack("<HHI", 22, 64, 0x63F) + guid
    with path.open("wb") as handle:
        handle.write(b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", len(fmt)) + fmt)
        handle.write(b"data\xff\xff\xff\xff")
        handle.truncate(megabytes << 20)
    return path


def cpu_bomb(path: Path) -> Path:
    """130 kB that decode to 10 minutes of 8-channel audio at 384 kHz: seconds of CPU."""
    return silent_flac(path, rate=384000, channels=8, seconds=600, declared_s=60, block=65535)


def lying_flac(path: Path) -> Path:
    """Says 1 s, holds 6 minutes."""
    return silent_flac(path, rate=16000, channels=1, seconds=360, declared_s=1, block=4096)


def one_line_reason(exc: pytest.ExceptionInfo[AudioError], *private: str) -> str:
    reason = str(exc.value)
    assert "\n" not in reason and all(word not in reason for word in private)
    return reason


# --- library ----------------------------------------------------------------------


def test_the_child_decodes_exactly_what_faster_whisper_decodes(
    clips: list[Path], tmp_path: Path
) -> None:
    stereo = tmp_path / "stereo44.flac"
    subprocess.run(["sox", str(clips[1]), "-r", "44100", "-c", "2", str(stereo)], check=True)
    files = [clips[0], stereo] + [
        audiogen.encode(clips[2], tmp_path / f"c{ext}") for ext in (".mp3", ".m4a", ".ogg")
    ]
    for path in files:
        expected = decode_audio(str(path))
        whole = decode_file(path, Limits())
        assert whole.dtype == np.float32 and np.array_equal(whole, expected), path.name
        pieces = list(decode_stream(path, Limits(), piece_s=0.7))
        assert {p.size for p in pieces[:-1]} == {11200} and 0 < pieces[-1].size <= 11200
        assert np.array_equal(np.concatenate(pieces), expected), path.name


def test_ranges_are_read_in_one_streamed_pass_as_slices_of_the_whole(clips: list[Path]) -> None:
    whole = decode_file(clips[3], Limits())
    ranges = [(0.5, 1.25), (0.0, 0.1), (1.2, 3.0), (99.0, 100.0)]  # overlapping, past the end
    got = read_ranges(clips[3], Limits(), ranges, piece_s=0.7)
    for (a, b), part in zip(ranges, got, strict=True):
        assert np.array_equal(part, whole[int(a * 16000) : int(b * 16000)])
    assert got[-1].size == 0


def needs_a_big_probe(path: Path) -> Path:
    """1.5 MB of zeros before a WAV: FFmpeg's prober finds no format in them and grows
    its buffer towards 1 MB, a fresh mapping that a 1 MB cap always refuses (a small
    clip may fit in what the child's heap already holds, and pass the cap by luck)."""
    audiogen.silence_wav(path.with_suffix(".clip.wav"), 1.0)
    path.write_bytes(b"\0" * 1_500_000 + path.with_suffix(".clip.wav").read_bytes())
    return path


def test_a_tiny_memory_cap_fails_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as exc:
        decode_file(
            needs_a_big_probe(tmp_path / "padded.wav"), replace(Limits(), decode_memory_mb=1)
        )
    assert one_line_reason(exc) == "decoding used more than 1 MB"


def test_the_cpu_cap_and_the_clock_stop_a_decompression_bomb(tmp_path: Path) -> None:
    bomb = cpu_bomb(tmp_path / "bomb.flac")
    with pytest.raises(AudioError) as exc:
        decode_file(bomb, replace(Limits(), decode_cpu_s=1))
    assert one_line_reason(exc) == "decoding used more than 1 s of CPU"
    with pytest.raises(AudioError) as exc:
        list(decode_stream(bomb, replace(Limits(), decode_timeout_s=0.5), piece_s=30))
    assert one_line_reason(exc) == "decoding took longer than 0.5 s"


def test_the_child_counts_what_it_decodes_whatever_the_header_says(tmp_path: Path) -> None:
    liar = lying_flac(tmp_path / "liar.flac")
    assert decode_file(liar, Limits()).size == -(-360 * 16000 // 4096) * 4096  # whole blocks
    with pytest.raises(AudioError) as exc:
        decode_file(liar, replace(Limits(), max_duration_min=2))
    assert "more than the 2 min cap" in one_line_reason(exc)
    # the child stops by itself, without the parent's second check
    limits = ["--max-samples", "16000", "--memory-mb", "2048", "--cpu-s", "60"]
    child = subprocess.run(
        [sys.executable, "-m", "transcribe.asr.decode", *limits, "--", str(liar)],
        capture_output=True,
        cwd=PROJECT,
        check=False,
    )
    assert child.returncode == 3 and len(child.stdout) <= 16000 * 2
    assert child.stderr.count(b"\n") == 1 and b"min cap (the header said less)" in child.stderr


def test_the_clock_counts_waiting_for_the_child_not_transcribing(clips: list[Path]) -> None:
    """Batching transcribes between two pieces: that time must not kill a slow decoder."""
    pieces = decode_stream(clips[3], replace(Limits(), decode_timeout_s=4), piece_s=1.0)
    first = next(pieces)
    time.sleep(5)  # longer than the whole budget, spent outside the child
    rest = list(pieces)
    assert np.array_equal(np.concatenate([first, *rest]), decode_audio(str(clips[3])))


def test_playlists_named_mp3_are_refused_by_the_child_itself(
    clips: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "Dupont Marie"
    folder.mkdir()
    (folder / "real.wav").write_bytes(clips[0].read_bytes())
    hls = folder / "hls.mp3"
    hls.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nreal.wav\n#EXT-X-ENDLIST\n")
    concat = folder / "concat.mp3"
    concat.write_text("ffconcat version 1.0\nfile 'real.wav'\n")
    for playlist in (hls, concat):
        with pytest.raises(AudioError) as exc:
            decode_file(playlist, Limits())
        one_line_reason(exc, "Dupont", "real.wav")


def test_a_missing_file_is_a_resource_fault_not_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        decode_file(tmp_path / "gone.wav", Limits())


# --- the real watcher ---------------------------------------------------------------


@pytest.mark.slow
def test_watch_quarantines_each_hostile_file_and_transcribes_the_good_one(
    clips: list[Path], tmp_path: Path
) -> None:
    home = tmp_path / "ws"
    cli = cli_workspace(home, [clips[0]])  # d0.wav, a good dictation
    # caps a real dictation fits in (its decoder needs ~150 MB and ~0.2 s of CPU)
    set_config(home, decode_memory_mb=256, decode_cpu_s=1, max_duration_min=5)
    inbox = home / "inbox" / CLIENT
    wide_wav(inbox / "wide.wav", 64)
    cpu_bomb(inbox / "bomb.flac")
    lying_flac(inbox / "liar.flac")
    subprocess.run([*cli, "watch", "--once"], check=True, capture_output=True, timeout=300)
    jobs = {
        job["source"]: job
        for job in json.loads(
            subprocess.run(
                [*cli, "status", "--json"], check=True, capture_output=True, text=True
            ).stdout
        )
    }
    assert jobs["d0.wav"]["state"] == "review"
    expected = {
        "wide.wav": "decoding used more than 256 MB",
        "bomb.flac": "decoding used more than 1 s of CPU",
        "liar.flac": "decoded audio lasts more than the 5 min cap",
    }
    for name, reason in expected.items():
        assert jobs[name]["state"] == "quarantined", jobs[name]
        assert jobs[name]["reason"].startswith(reason), jobs[name]
        assert len(list((home / "quarantine").rglob(name))) == 1


def test_intake_reads_the_header_in_the_capped_child(tmp_path: Path) -> None:
    """Opening a container runs FFmpeg's demuxer: intake's header check happens in the
    child too, so its memory cap holds there (and the service process never opens it)."""
    clip = tmp_path / "clip.wav"
    audiogen.silence_wav(clip, 1.0)
    info = probe_file(clip, Limits())
    assert (info.format_name, info.sample_rate, info.channels) == ("wav", 16000, 1)
    with pytest.raises(AudioError, match=r"^decoding used more than 1 MB$"):
        probe_file(needs_a_big_probe(tmp_path / "padded.wav"), Limits(decode_memory_mb=1))
    with pytest.raises(AudioError, match="over the 0 min cap"):
        probe_file(clip, Limits(max_duration_min=0.001))
