"""The Whisper engine: load the model once per process, on the right device.

faster-whisper is imported lazily so that ``status``, ``init`` and friends start
instantly. Decoding itself is :mod:`transcribe.asr.decoder`'s, which works on the
loaded model; the engine says which model and device it is, because a transcript
that cannot say how it was made cannot be compared or reproduced.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TranscriptionConfig
from ..errors import ModelError
from . import cuda
from .models import ResolvedModel, resolve_model

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    compute_type: str
    cpu_threads: int


def available_cores() -> int:
    """Cores this process may use (cgroup/affinity aware), not the host's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def cuda_device_count() -> int:
    """GPUs CTranslate2 sees; where there are some, the CUDA 12 libraries it will open
    are loaded first (:mod:`.cuda`), so a machine with only a newer CUDA finds them."""
    try:
        import ctranslate2

        count = int(ctranslate2.get_cuda_device_count())
    except Exception:
        return 0
    if count:
        cuda.preload()
    return count


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
        if self.device.device == "cuda":
            cuda.require()  # one line with the fix, not a failed first job
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
