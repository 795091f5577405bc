"""Decoding untrusted audio in a child process with hard limits.

A dropped file is hostile until proven otherwise: a crafted header can make FFmpeg
allocate gigabytes, spin for hours, or (in a decoder bug) crash. So the decoding never
happens in the service's process. A child (:func:`main`, run by ``python -I``, or by
hand as ``python -m transcribe.asr.decode``; it imports PyAV and this package's small
modules, not numpy or faster-whisper) caps its own memory (``RLIMIT_AS``), CPU
seconds, open files, written file size and core dumps before it opens the file, opens
it with the demuxer and protocol whitelists of :mod:`transcribe.asr.audio`, and streams
16 kHz mono s16 samples to stdout. It counts what it decodes and stops when the audio
runs past ``max_duration_min``, so the cap holds even when the header lies.

Intake's header check (:func:`probe_file`) runs in the same child with ``--probe``:
opening a file already runs FFmpeg's demuxer, so not even that happens in the service.

The parent reads the samples under a wall-clock budget (the time it spends waiting for
the child, so a long transcription between two pieces does not count against it),
kills the child when the budget runs out, and turns every way the child can end badly
into one :class:`AudioError` line: the job is quarantined with that reason.

The resampling is exactly ``faster_whisper.audio.decode_audio`` (frames grouped by
500 000 samples, invalid frames skipped, s16 mono, then ``/ 32768.0`` as float32), so
transcripts are bit-identical to plain faster-whisper.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import math
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..config import Limits
from ..errors import AudioError
from .audio import SAFE_OPEN_OPTIONS, AudioInfo, check_container, one_line, probe

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16000
SAMPLE_BYTES = 2  # s16
GROUP_SAMPLES = 500_000  # as faster_whisper.audio.decode_audio: same frames, same output
PROBE_TIMEOUT_S = 60.0  # reading a header takes well under a second
OPEN_FILES = 16  # stdio, the audio file, and a little room for FFmpeg
EXIT_REFUSED = 3  # the file is bad: the last stderr line says why
EXIT_MEMORY = 4  # the memory cap was hit
EXIT_BROKEN = 5  # the child cannot start: the installation, not the file, is at fault
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# -I: no PYTHON* variables, no user site, no current folder on sys.path.
CHILD = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from transcribe.asr.decode import main; sys.exit(main())"
)


# --- the child -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Child entry: decode one file to stdout; on failure one line on stderr, exit > 0."""
    args = _arguments(argv)
    try:  # before the limits: loading the libraries is not the file's doing
        import av

        _load_lazy_modules()
    except ImportError as exc:
        return _fail(f"PyAV cannot be imported: {exc}", EXIT_BROKEN)
    limit_self(args.memory_mb, args.cpu_s)
    try:
        if args.probe:
            _probe_to(args.path, args.max_samples, sys.stdout)
        else:
            _decode_to(args.path, args.max_samples, sys.stdout.buffer)
    except MemoryError:  # av.error.MemoryError is one too
        return _fail(f"decoding used more than {args.memory_mb} MB", EXIT_MEMORY)
    except BrokenPipeError:  # the parent stopped reading: nobody to tell
        return EXIT_REFUSED
    except (AudioError, av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        if _out_of_memory(exc):
            return _fail(f"decoding used more than {args.memory_mb} MB", EXIT_MEMORY)
        if isinstance(exc, AudioError):
            return _fail(str(exc), EXIT_REFUSED)
        return _fail(f"cannot decode audio: {one_line(exc)}", EXIT_REFUSED)
    return 0


def _load_lazy_modules() -> None:
    """PyAV imports its stream and codec-context classes the first time a container
    holds one; under a 1 MB address-space cap that import itself fails ("failed to map
    segment"), which would read as a broken file. Loading them first keeps the cap's
    verdict about the file."""
    import av.audio.codeccontext
    import av.audio.stream
    import av.subtitles.codeccontext
    import av.subtitles.stream
    import av.video.codeccontext
    import av.video.stream  # noqa: F401


def _out_of_memory(exc: BaseException) -> bool:
    """ENOMEM under the address-space cap is the cap, not the file, wherever it surfaces:
    FFmpeg's error, an OSError from opening a library, or our own wrapped AudioError."""
    return getattr(exc, "errno", None) == errno.ENOMEM or os.strerror(errno.ENOMEM) in str(exc)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m transcribe.asr.decode")
    parser.add_argument("--max-samples", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-s", type=int, required=True)
    parser.add_argument("--probe", action="store_true", help="print the header as JSON")
    parser.add_argument("path")
    return parser.parse_args(argv)


def limit_self(memory_mb: int, cpu_s: int) -> None:
    """Caps that hold whatever FFmpeg does: the kernel enforces them, not our code."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # writes only to the pipe
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))


def _probe_to(path: str, max_samples: int, out: IO[str]) -> None:
    """The header checks of :func:`transcribe.asr.audio.probe`, as JSON (the size cap was
    checked by the parent, which knows the limits)."""
    caps = Limits(max_file_mb=math.inf, max_duration_min=max_samples / SAMPLE_RATE / 60)
    out.write(json.dumps(asdict(probe(Path(path), caps))))
    out.flush()


def _decode_to(path: str, max_samples: int, out: IO[bytes]) -> None:
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    written = 0
    with av.open(path, metadata_errors="ignore", options=SAFE_OPEN_OPTIONS) as container:
        check_container(container)
        for frame in _resampled(container, resampler):
            written += frame.samples
            if written > max_samples:
                raise AudioError(over_duration(max_samples))
            out.write(memoryview(frame.planes[0])[: frame.samples * SAMPLE_BYTES])
    out.flush()


def _resampled(container: Any, resampler: Any) -> Iterator[Any]:
    """decode_audio's chain: skip invalid frames, regroup, resample, flush."""
    import av

    fifo = av.AudioFifo()
    for frame in _valid_frames(container.decode(audio=0)):
        frame.pts = None  # decode_audio ignores timestamps too
        fifo.write(frame)
        if fifo.samples >= GROUP_SAMPLES:
            yield from resampler.resample(fifo.read())
    if fifo.samples > 0:
        yield from resampler.resample(fifo.read())
    yield from resampler.resample(None)


def _valid_frames(frames: Iterator[Any]) -> Iterator[Any]:
    import av

    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.InvalidDataError:
            continue


def _fail(message: str, code: int) -> int:
    sys.stderr.write(" ".join(message.split())[:300] + "\n")
    sys.stderr.flush()
    return code


def over_duration(max_samples: int) -> str:
    minutes = max_samples / SAMPLE_RATE / 60
    return f"decoded audio lasts more than the {minutes:g} min cap (the header said less)"


# --- the parent ------------------------------------------------------------------


def decode_file(path: Path, limits: Limits) -> np.ndarray:
    """The whole file as float32 at 16 kHz, as ``faster_whisper.decode_audio`` returns it."""
    with _Decoder(path, limits) as decoder:
        raw = decoder.read(None)
        decoder.finish()
    return _as_float(raw)


def decode_stream(path: Path, limits: Limits, piece_s: float) -> Iterator[np.ndarray]:
    """The file ``piece_s`` seconds at a time (the last piece shorter): a long dictation
    never sits in memory whole. A failure found at the end is raised after the pieces
    already yielded; the caller drops the file's partial result."""
    size = max(1, int(piece_s * SAMPLE_RATE))
    with _Decoder(path, limits) as decoder:
        while True:
            raw = decoder.read(size)
            if len(raw) < size * SAMPLE_BYTES:
                decoder.finish()
                if raw:
                    yield _as_float(raw)
                return
            yield _as_float(raw)


def read_ranges(
    path: Path, limits: Limits, ranges: Sequence[tuple[float, float]], piece_s: float = 60.0
) -> list[np.ndarray]:
    """The audio of each ``(start_s, end_s)`` range, in one streamed decoding: for the
    batched path, which keeps no file in memory whole. Ranges past the end come back
    short (or empty)."""
    import numpy as np

    bounds = [(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in ranges]
    parts: list[list[np.ndarray]] = [[] for _ in bounds]
    offset = 0
    last = max((end for _, end in bounds), default=0)
    with contextlib.closing(decode_stream(path, limits, piece_s)) as pieces:
        for piece in pieces:
            for (start, end), found in zip(bounds, parts, strict=True):
                lo, hi = max(start, offset), min(end, offset + len(piece))
                if lo < hi:
                    found.append(piece[lo - offset : hi - offset])
            offset += len(piece)
            if offset >= last:
                break  # closing the stream stops the child
    return [np.concatenate(p) if p else np.zeros(0, np.float32) for p in parts]


def probe_file(path: Path, limits: Limits) -> AudioInfo:
    """The container header, read by a capped child: opening a file already runs
    FFmpeg's demuxer (and some decoding, to find the stream's parameters), so even this
    never happens in the service. A child that hangs (a FIFO swapped in under the name)
    is killed after PROBE_TIMEOUT_S."""
    os.stat(path)  # a missing file is the caller's problem (OSError), not bad input
    timeout = min(limits.decode_timeout_s, PROBE_TIMEOUT_S)
    try:
        done = subprocess.run(
            _command(path, limits, probe=True),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AudioError(f"reading the file's header took longer than {timeout:g} s") from None
    error = _verdict(done.returncode, _last_line(done.stderr), 0.0, limits)
    if error is not None:
        raise error
    return AudioInfo(**json.loads(done.stdout))


def _as_float(raw: bytes | bytearray) -> np.ndarray:
    import numpy as np

    audio = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    audio /= 32768.0  # in place: same values as decode_audio's ``/ 32768.0``
    return audio


def max_samples(limits: Limits) -> int:
    return int(limits.max_duration_min * 60 * SAMPLE_RATE)


class _Decoder:
    """One child process: its output read under the time budget, its end judged."""

    def __init__(self, path: Path, limits: Limits) -> None:
        os.stat(path)  # a missing file is the store's problem (OSError), not bad input
        self.limits = limits
        self.budget = limits.decode_timeout_s
        self.received = 0
        self.timed_out = False
        self.stderr = b""
        self.proc = subprocess.Popen(
            _command(path, limits),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the parent, which kills the child
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        _widen_pipe(self.proc.stdout.fileno())
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.selector.register(self.proc.stderr, selectors.EVENT_READ)

    def __enter__(self) -> _Decoder:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()
        self.selector.close()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()  # type: ignore[union-attr]

    def read(self, samples: int | None) -> bytearray:
        """``samples`` samples (all of them for None), fewer only at the end of the file."""
        want = math.inf if samples is None else samples * SAMPLE_BYTES
        data = bytearray()
        while len(data) < want and self._stdout_open():
            self._pump(data, int(min(want - len(data), 1 << 20)))
            if self.received + len(data) // SAMPLE_BYTES > max_samples(self.limits):
                self._kill()  # the child counts too; this holds if it ever does not
                raise AudioError(over_duration(max_samples(self.limits)))
        if len(data) % SAMPLE_BYTES:
            del data[-1]
        self.received += len(data) // SAMPLE_BYTES
        return data

    def finish(self) -> None:
        """Wait for the child to end (still under the budget); raise what went wrong."""
        while self.selector.get_map():
            self._pump(bytearray(), 1 << 16)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        error = self._verdict(usage.ru_utime + usage.ru_stime)
        if error is not None:
            raise error

    def _stdout_open(self) -> bool:
        return any(key.fileobj is self.proc.stdout for key in self.selector.get_map().values())

    def _pump(self, data: bytearray, room: int) -> None:
        """Wait for output from the child, charging the wait to the budget."""
        started = time.monotonic()
        events = self.selector.select(self.budget) if self.budget > 0 else []
        self.budget -= time.monotonic() - started
        if not events:
            self._kill(timed_out=True)
            raise AudioError(f"decoding took longer than {self.limits.decode_timeout_s:g} s")
        for key, _ in events:
            is_stdout = key.fileobj is self.proc.stdout
            chunk = os.read(key.fd, room if is_stdout else 1 << 16)
            if not chunk:
                self.selector.unregister(key.fileobj)
            elif is_stdout:
                data += chunk
            else:
                self.stderr = (self.stderr + chunk)[-4096:]

    def _kill(self, *, timed_out: bool = False) -> None:
        self.timed_out = timed_out
        self.proc.kill()
        self.proc.wait()

    def _verdict(self, cpu_s: float) -> AudioError | None:
        return _verdict(self.proc.returncode, _last_line(self.stderr), cpu_s, self.limits)


def _verdict(code: int, last: str, cpu_s: float, limits: Limits) -> AudioError | None:
    """Every way the child can end, as one line for the quarantine reason."""
    if code == 0:
        return None
    if code == EXIT_BROKEN:  # not the file's fault: the job fails and can be retried
        raise RuntimeError(f"the audio decoder cannot start: {last}")
    if code == EXIT_MEMORY or (code > 0 and "MemoryError" in last):
        return AudioError(f"decoding used more than {limits.decode_memory_mb:g} MB")
    if code < 0 and (-code == signal.SIGXCPU or cpu_s >= _cpu_cap(limits)):
        return AudioError(f"decoding used more than {limits.decode_cpu_s:g} s of CPU")
    if code == EXIT_REFUSED and last:
        return AudioError(last)
    if code < 0:
        return AudioError(f"the decoder crashed on this file ({signal.Signals(-code).name})")
    return AudioError(f"the decoder failed on this file: {last or f'exit status {code}'}")


def _command(path: Path, limits: Limits, *, probe: bool = False) -> list[str]:
    return [
        sys.executable,
        "-I",
        "-c",
        CHILD,
        str(PACKAGE_ROOT),
        "--max-samples",
        str(max_samples(limits)),
        "--memory-mb",
        str(max(1, int(limits.decode_memory_mb))),
        "--cpu-s",
        str(_cpu_cap(limits)),
        *(["--probe"] if probe else []),
        "--",
        str(path),
    ]


def _cpu_cap(limits: Limits) -> int:
    return max(1, math.ceil(limits.decode_cpu_s))  # the kernel counts whole seconds


def _widen_pipe(fd: int) -> None:
    """A 1 MB pipe instead of 64 KB: fewer wake-ups for a 4-hour file (Linux only)."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return " ".join(lines[-1].split())[:300] if lines else ""


if __name__ == "__main__":
    sys.exit(main())
