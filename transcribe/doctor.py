"""``doctor``: what is installed, which model and device would be used, what is missing."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

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


def run_checks(config: TranscriptionConfig | None = None) -> list[Check]:
    config = config or TranscriptionConfig()
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0])]
    checks += [_package(name) for name in PACKAGES]
    checks += [_model(config), _device(config)]
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
