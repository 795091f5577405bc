"""``doctor``: what is installed, which model and device would be used, what is missing."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from .asr import cuda
from .asr.engine import choose_device, cuda_device_count
from .asr.models import EMBEDDED_SOURCES, embedded_dir, resolve_model
from .config import Config, TranscriptionConfig
from .errors import TranscribeError

PACKAGES = ("faster-whisper", "ctranslate2", "av", "watchdog", "typer", "rich", "psycopg")
TOOLS = {
    "espeak-ng": "speech for tests and the demo",
    "soffice": "DOCX to PDF (libreoffice-writer-nogui)",
    "pdfsig": "independent signature check (poppler-utils)",
    "age": "opening archives with the standard tool",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _package(name: str) -> Check:
    try:
        return Check(f"python: {name}", True, importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        return Check(f"python: {name}", False, "not installed (run `make setup`)")


def _model(config: TranscriptionConfig) -> Check:
    try:
        ref = resolve_model(config.model)
    except TranscribeError as exc:
        return Check("model", False, str(exc))
    where = ref.location if ref.local else f"{ref.location} (hub name: needs internet once)"
    if ref.local and Path(ref.location) == embedded_dir():
        stamp = Path(ref.location) / "model.bin.sha256"
        known = {s.sha256 for s in EMBEDDED_SOURCES}
        verified = stamp.is_file() and stamp.read_text().strip() in known
        where += ", SHA-256 verified" if verified else ", NOT verified"
        return Check("model", verified, f"{config.model}: {where}")
    return Check("model", True, f"{config.model}: {where}")


def _device(config: TranscriptionConfig) -> Check:
    try:
        choice = choose_device(config)
    except TranscribeError as exc:
        return Check("device", False, str(exc))
    gpus = cuda_device_count()
    return Check(
        "device",
        True,
        f"{choice.device} {choice.compute_type}, "
        f"{choice.cpu_threads} CPU thread(s), {gpus} CUDA GPU(s)",
    )


def gpu_checks(config: TranscriptionConfig) -> list[Check]:
    """What a GPU worker on this machine would use, and what it lacks. None is
    required: a machine without a GPU is a CPU worker, not a broken one."""
    gpus = cuda_device_count()  # loads the CUDA 12 wheels' libraries when GPUs are seen
    found = {lib: cuda.locate(lib) for lib in cuda.wanted()}
    missing = cuda.missing(found.values())
    checks = [_driver(), _gpus(config, gpus)]
    checks += [_library(lib, found.get(lib)) for lib in cuda.LIBRARIES]
    return [*checks, _gpu_worker(config, gpus, missing)]


def _driver() -> Check:
    driver = cuda.driver()
    smi = shutil.which("nvidia-smi")
    if driver.path is None:
        also = f", though {smi} is there" if smi else ", no nvidia-smi"
        detail = f"none: no {cuda.DRIVER}{also}: no NVIDIA GPU can be used here"
        return Check("gpu: driver", False, detail, required=False)
    runs = f", runs CUDA {driver.cuda} and older" if driver.cuda else ""
    return Check("gpu: driver", True, f"{driver.path}{runs}", required=False)


def _gpus(config: TranscriptionConfig, gpus: int) -> Check:
    if gpus == 0:
        detail = "none visible to CTranslate2: this machine decodes on CPU"
        return Check("gpu: devices", False, detail, required=False)
    compute = choose_device(replace(config, device="cuda")).compute_type
    supported = _cuda_compute_types()
    detail = f"{gpus} CUDA GPU(s) visible to CTranslate2, which would decode in {compute}"
    if supported and compute not in supported:
        detail += f", not supported here (set [transcription] compute_type: {supported})"
        return Check("gpu: devices", False, detail, required=False)
    return Check("gpu: devices", True, detail, required=False)


def _cuda_compute_types() -> str:
    try:
        import ctranslate2

        return ", ".join(sorted(ctranslate2.get_supported_compute_types("cuda")))
    except Exception:
        return ""


def _library(library: cuda.CudaLibrary, found: cuda.Found | None) -> Check:
    name = f"gpu: {library.name}"
    if found is None:
        ct2 = _version("ctranslate2")
        detail = f"not needed: CTranslate2 {ct2} does not open {library.soname}"
        return Check(name, True, detail, required=False)
    if found.source == "wheel":
        detail = f"{library.wheel} {cuda.wheel_version(library)}: {found.path}"
    elif found.source == "system":
        detail = f"system: {found.path}"
    elif found.path:
        detail = f"missing: {library.soname} in {found.path} does not load: {library.install}"
    else:
        detail = f"missing: no {library.soname}; a GPU worker needs it: {library.install}"
    return Check(name, found.ok, detail, required=False)


def _gpu_worker(config: TranscriptionConfig, gpus: int, missing: list[cuda.CudaLibrary]) -> Check:
    """What ``transcribe worker`` without ``--queue`` would take here, and how."""
    from .queue import default_queues

    try:
        device = choose_device(config)
    except TranscribeError:
        device = None  # the device check says why
    on_gpu = device is not None and device.device == "cuda"
    queues = ", ".join(default_queues(on_gpu))
    if not on_gpu:
        why = "no CUDA GPU" if gpus == 0 else f"[transcription] device = {config.device!r}"
        detail = f"not a GPU worker ({why}): `transcribe worker` takes {queues}"
        return Check("gpu: worker", False, detail, required=False)
    if missing:
        names = ", ".join(lib.name for lib in missing)
        detail = f"would stop at start-up, {names} missing: run {missing[0].install}"
        return Check("gpu: worker", False, detail, required=False)
    detail = f"`transcribe worker` takes {queues}, decoding on cuda {device.compute_type}"
    return Check("gpu: worker", True, detail, required=False)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def run_checks(config: TranscriptionConfig | None = None) -> list[Check]:
    config = config or TranscriptionConfig()
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0])]
    checks += [_package(name) for name in PACKAGES]
    checks += [_model(config), _device(config), *gpu_checks(config)]
    for tool, purpose in TOOLS.items():
        path = shutil.which(tool)
        checks.append(
            Check(f"tool: {tool}", path is not None, path or f"missing: {purpose}", required=False)
        )
    return checks


def store_check(config: Config) -> Check:
    """Which job store the workspace uses, and whether it opens at its schema."""
    from .store import open_store

    try:
        with open_store(config) as store:
            return Check("job store", True, f"{store.describe()}, schema {store.schema_version()}")
    except TranscribeError as exc:
        return Check("job store", False, str(exc))
