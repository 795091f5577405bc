"""Looking at audio before trusting it: extension, size and duration caps, a probe.

Decoding a hostile or broken file can eat memory and time, so everything that can be
checked from the file's size and container header is checked first, and a file that
fails is rejected with a one-line reason (the caller quarantines the job). A header
can lie, so the decoding itself happens later in a capped child process
(:mod:`transcribe.asr.decode`) that checks the container again and counts what it decodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Limits
from ..errors import AudioError

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".mp3",
        ".m4a",
        ".aac",
        ".ogg",
        ".oga",
        ".opus",
        ".flac",
        ".webm",
        ".amr",
        ".dss",
        ".mp4",
        ".wma",
    }
)
# More tracks than any dictation device records: a header claiming more is hostile.
MAX_CHANNELS = 32
# Formats FFmpeg may pull extra files or URLs through: never accepted as audio.
REFUSED_FORMATS = frozenset({"hls", "concat", "applehttp", "image2", "tty", "lavfi"})
# Only these demuxers may even look at a dropped file, and only the file protocol:
# a playlist named .mp3 can then neither be parsed nor reach other files or the network.
SAFE_OPEN_OPTIONS = {
    "format_whitelist": "wav,w64,mp3,mov,mp4,m4a,3gp,3g2,mj2,ogg,flac,matroska,webm,amr,"
    "amrnb,amrwb,dss,aac,asf,caf,aiff",
    "protocol_whitelist": "file",
}


@dataclass(frozen=True)
class AudioInfo:
    """What the container header says about a dictation."""

    format_name: str
    codec: str
    duration_s: float
    sample_rate: int
    channels: int


def check_extension(path: Path) -> None:
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        supported = ", ".join(sorted(e.lstrip(".") for e in AUDIO_EXTENSIONS))
        raise AudioError(
            f"unsupported file type {path.suffix or '(none)'!r}; accepted: {supported}"
        )


def check_size(size_bytes: int, limits: Limits) -> None:
    if size_bytes == 0:
        raise AudioError("empty file")
    if size_bytes > limits.max_file_mb * 1024 * 1024:
        raise AudioError(
            f"file is {size_bytes / 1048576:.0f} MB, over the {limits.max_file_mb:.0f} MB cap"
        )


def _stream_duration(container, stream) -> float:  # type: ignore[no-untyped-def]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def probe(path: Path, limits: Limits) -> AudioInfo:
    """Open the container header only; reject what is not plain, bounded audio."""
    import av  # imported here: PyAV is heavy and only needed once a file arrives

    check_extension(path)
    check_size(path.stat().st_size, limits)
    try:
        with av.open(str(path), metadata_errors="ignore", options=SAFE_OPEN_OPTIONS) as container:
            check_container(container)
            stream = container.streams.audio[0]
            if stream.codec_context is None:  # e.g. a WAV header with 0 bits per sample
                raise AudioError("no decoder for this audio stream")
            duration = _stream_duration(container, stream)
            info = AudioInfo(
                format_name=container.format.name,
                codec=stream.codec_context.name,
                duration_s=duration,
                sample_rate=int(stream.codec_context.sample_rate or 0),
                channels=int(stream.codec_context.channels or 0),
            )
    except AudioError:
        raise
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise AudioError(f"cannot read audio: {one_line(exc)}") from None
    _check_info(info, limits)
    return info


def check_container(container: Any) -> None:
    """Refuse formats that can pull in other files, and files without audio; the
    decoding child checks again, since the parent's probe is not the last word."""
    fmt = container.format.name
    if set(fmt.split(",")) & REFUSED_FORMATS:
        raise AudioError(f"container format {fmt!r} is refused (it can reference other files)")
    if not container.streams.audio:
        raise AudioError("no audio stream in the file")


def _check_info(info: AudioInfo, limits: Limits) -> None:
    if not 1000 <= info.sample_rate <= 384_000:
        raise AudioError(f"implausible sample rate {info.sample_rate} Hz")
    if not 1 <= info.channels <= MAX_CHANNELS:  # a header may say 0 or 65535
        raise AudioError(f"implausible channel count {info.channels}")
    if not math.isfinite(info.duration_s) or info.duration_s < 0:
        raise AudioError(f"implausible duration {info.duration_s} s")
    if info.duration_s > limits.max_duration_min * 60:
        raise AudioError(
            f"audio lasts {info.duration_s / 60:.0f} min, over the "
            f"{limits.max_duration_min:.0f} min cap"
        )


def one_line(exc: BaseException) -> str:
    """FFmpeg messages without the file path (which may carry a patient's name)."""
    text = " ".join(str(getattr(exc, "strerror", None) or exc).split())
    return text[:200] or type(exc).__name__
