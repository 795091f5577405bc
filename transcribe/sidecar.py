"""The optional JSON sidecar a dictaphone app drops beside the audio.

``dictee-042.mp3.json`` (or ``dictee-042.json``) may say who dictated, about whom,
what kind of letter, how urgent, in which language. A wrong sidecar is rejected with
a reason naming the key, because guessing a patient or a priority is worse than
asking.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import InputRejected

TEXT_FIELDS = ("author", "patient", "matter", "document_type", "recipient", "reference")
PRIORITIES = ("urgent", "normal")
LANGUAGES = ("fr", "en", "auto")
MAX_TEXT = 500


@dataclass(frozen=True)
class Sidecar:
    author: str | None = None
    patient: str | None = None
    matter: str | None = None
    document_type: str | None = None
    recipient: str | None = None
    reference: str | None = None
    priority: str = "normal"
    language: str | None = None
    ignored_keys: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ignored_keys"] = list(self.ignored_keys)
        return data


def sidecar_candidates(audio: Path) -> tuple[Path, Path]:
    """``name.mp3.json`` first, then ``name.json``."""
    return audio.with_name(audio.name + ".json"), audio.with_suffix(".json")


def find_sidecar(audio: Path) -> Path | None:
    for candidate in sidecar_candidates(audio):
        if candidate != audio and candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


def read_sidecar(path: Path, *, max_kb: float) -> Sidecar:
    """Parse and validate; every problem becomes a one-line :class:`InputRejected`."""
    size = path.stat().st_size
    if size > max_kb * 1024:
        raise InputRejected(f"sidecar {path.name} is {size} bytes, over the {max_kb:.0f} KB cap")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputRejected(f"sidecar {path.name} is not valid JSON: {_short(exc)}") from None
    return validate_sidecar(raw, name=path.name)


def validate_sidecar(raw: Any, *, name: str = "sidecar") -> Sidecar:
    if not isinstance(raw, dict):
        raise InputRejected(f"{name} must hold a JSON object, not {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key in TEXT_FIELDS:
        if key in raw and raw[key] is not None:
            values[key] = _text(name, key, raw[key])
    priority = raw.get("priority", "normal")
    if priority not in PRIORITIES:
        raise InputRejected(f"{name}: priority must be 'urgent' or 'normal', not {priority!r}")
    language = raw.get("language")
    if language is not None and language not in LANGUAGES:
        raise InputRejected(f"{name}: language must be fr, en or auto, not {language!r}")
    known = set(TEXT_FIELDS) | {"priority", "language"}
    ignored = tuple(sorted(str(k)[:40] for k in raw if k not in known))
    return Sidecar(priority=priority, language=language, ignored_keys=ignored, **values)


def _text(name: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InputRejected(f"{name}: {key} must be text, not {type(value).__name__}")
    text = " ".join(value.split())
    if len(text) > MAX_TEXT:
        raise InputRejected(f"{name}: {key} is longer than {MAX_TEXT} characters")
    return text


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__
