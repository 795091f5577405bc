"""The Whisper engine: load the model once per process, transcribe to plain data.

faster-whisper is imported lazily so that ``status``, ``init`` and friends start
instantly. The engine records every option it used, because a transcript that cannot
say how it was made cannot be compared or reproduced.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import Limits, TranscriptionConfig
from .decode import decode_file
from .errors import ModelError
from .models import ResolvedModel, resolve_model


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    compute_type: str
    cpu_threads: int


@dataclass(frozen=True)
class DecodeOptions:
    """Per-call options passed to ``WhisperModel.transcribe``; all recorded."""

    language: str | None = None
    beam_size: int = 5
    vad_filter: bool = True
    word_timestamps: bool = True
    initial_prompt: str | None = None
    hotwords: str | None = None
    condition_on_previous_text: bool = True
    # faster-whisper's own default: shorter silences (500 ms was tried) cut sentences
    # apart and cost accuracy on FLEURS French (bench/asr.py); long pauses still go.
    vad_parameters: dict[str, Any] = field(
        default_factory=lambda: {"min_silence_duration_ms": 2000}
    )


def available_cores() -> int:
    """Cores this process may use (cgroup/affinity aware), not the host's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def cuda_device_count() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:
        return 0


def choose_device(config: TranscriptionConfig) -> DeviceChoice:
    """CUDA float16 when a GPU is there (or asked for), else CPU int8, threads = cores."""
    device = config.device
    if device == "auto":
        device = "cuda" if cuda_device_count() > 0 else "cpu"
    if device == "cuda" and cuda_device_count() == 0:
        raise ModelError("device = 'cuda' is configured but no CUDA GPU is visible")
    compute = config.compute_type
    if compute == "auto":
        compute = "float16" if device == "cuda" else "int8"
    threads = config.cpu_threads or available_cores()
    return DeviceChoice(device=device, compute_type=compute, cpu_threads=threads)


class WhisperEngine:
    """One loaded model. Not thread-safe on purpose: concurrent calls leak (upstream #1055)."""

    def __init__(self, config: TranscriptionConfig, *, base_dir: Path | None = None) -> None:
        self.config = config
        self.model_ref: ResolvedModel = resolve_model(config.model, base_dir=base_dir)
        self.device = choose_device(config)
        self.load_seconds = 0.0
        self._model: Any = None

    @property
    def model(self) -> Any:
        return self.load()

    def load(self) -> Any:
        """Load the model now (first call only); later calls return it."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        started = time.perf_counter()
        try:
            from faster_whisper import WhisperModel

            model = WhisperModel(
                self.model_ref.location,
                device=self.device.device,
                compute_type=self.device.compute_type,
                cpu_threads=self.device.cpu_threads,
                local_files_only=self.model_ref.local,
            )
        except Exception as exc:
            raise ModelError(
                f"cannot load model {self.model_ref.name!r}: {' '.join(str(exc).split())[:300]}",
                hint="a hub model name needs internet on first use; "
                "otherwise give a local model folder",
            ) from None
        self.load_seconds = time.perf_counter() - started
        return model

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.model_ref.name,
            "location": self.model_ref.location,
            **asdict(self.device),
            "load_s": round(self.load_seconds, 3),
        }

    def transcribe(
        self, audio: Path, options: DecodeOptions, limits: Limits | None = None
    ) -> dict[str, Any]:
        """Run Whisper and return plain data (segments, words, language, timings).

        The file is decoded in a capped child process (:mod:`transcribe.decode`), never by
        faster-whisper in this process; ``limits`` are the workspace's (defaults if None).
        A file the child refuses raises :class:`AudioError`.
        """
        model = self.model
        started = time.perf_counter()
        samples = decode_file(audio, limits or Limits())
        segments, info = model.transcribe(samples, **asdict(options))
        segments = [segment_record(s) for s in segments]
        elapsed = time.perf_counter() - started
        return {
            "language": info.language,
            "language_probability": round(float(info.language_probability), 4),
            "duration_s": round(float(info.duration), 3),
            "speech_s": round(float(info.duration_after_vad), 3),
            "segments": segments,
            "text": "".join(s["text"] for s in segments).strip(),
            "transcribe_s": round(elapsed, 3),
        }


def segment_record(segment: Any) -> dict[str, Any]:
    """A faster-whisper segment as plain, rounded data (the transcript.json shape)."""
    return {
        "id": segment.id,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "avg_logprob": round(segment.avg_logprob, 4),
        "no_speech_prob": round(segment.no_speech_prob, 4),
        "compression_ratio": round(segment.compression_ratio, 3),
        "words": [
            {
                "word": w.word,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "probability": round(float(w.probability), 4),
            }
            for w in (segment.words or [])
        ],
    }
