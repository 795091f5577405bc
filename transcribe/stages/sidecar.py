"""The optional JSON sidecar a dictaphone app drops beside the audio.

``dictee-042.mp3.json`` (or ``dictee-042.json``) may say who dictated, about whom,
what kind of letter, how urgent, in which language. A wrong sidecar is rejected with
a reason naming the key, because guessing a patient or a priority is worse than
asking.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputRejected

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


def display_name(name: str) -> str:
    """A file name fit to store and print: bytes that are not UTF-8 and control or
    bidi-override characters become visible escapes, so a hostile name can neither
    break the job store (SQLite wants valid UTF-8) nor a terminal line or a report."""
    try:
        text = os.fsencode(name).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a file name
        text = name
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def find_sidecar(audio: Path) -> Path | None:
    """The regular file beside ``audio`` that describes it; never a link or a FIFO.

    ``name.wav.json`` of a 255-byte name is too long to exist: that is "no sidecar",
    not an error that would stop the watcher.
    """
    for candidate in sidecar_candidates(audio):
        if candidate == audio:
            continue
        try:
            if stat.S_ISREG(candidate.lstat().st_mode):
                return candidate
        except OSError:
            continue
    return None


def read_sidecar(path: Path, *, max_kb: float) -> Sidecar:
    """Parse and validate; every problem becomes a one-line :class:`InputRejected`."""
    label = f"sidecar {display_name(path.name)}"
    data = _read_capped(path, label, int(max_kb * 1024))
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError also covers numbers over Python's 4300-digit limit
        raise InputRejected(f"{label} is not valid JSON: {_short(exc)}") from None
    return validate_sidecar(raw, name=label)


def _read_capped(path: Path, label: str, cap: int) -> bytes:
    """Read at most ``cap`` bytes of a regular file, without following a link or
    blocking on a FIFO swapped in since :func:`find_sidecar` looked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputRejected(f"{label} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputRejected(f"{label} is not a regular file")
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise InputRejected(f"{label} is over the {cap / 1024:.0f} KB cap")
    return data


def validate_sidecar(raw: Any, *, name: str = "sidecar") -> Sidecar:
    if not isinstance(raw, dict):
        raise InputRejected(f"{name} must hold a JSON object, not {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key in TEXT_FIELDS:
        if key in raw and raw[key] is not None:
            values[key] = _text(name, key, raw[key])
    priority = raw.get("priority", "normal")
    if priority not in PRIORITIES:
        raise InputRejected(
            f"{name}: priority must be 'urgent' or 'normal', not {_shown(priority)}"
        )
    language = raw.get("language")
    if language is not None and language not in LANGUAGES:
        raise InputRejected(f"{name}: language must be fr, en or auto, not {_shown(language)}")
    known = set(TEXT_FIELDS) | {"priority", "language"}
    ignored = tuple(sorted(display_name(str(k))[:40] for k in raw if k not in known))
    return Sidecar(priority=priority, language=language, ignored_keys=ignored, **values)


def _text(name: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InputRejected(f"{name}: {key} must be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON "\\ud800") would break the store
        raise InputRejected(f"{name}: {key} is not valid Unicode text") from None
    printable = "".join(ch if ch.isprintable() else " " for ch in value)
    text = " ".join(printable.split())
    if len(text) > MAX_TEXT:
        raise InputRejected(f"{name}: {key} is longer than {MAX_TEXT} characters")
    return text


def _shown(value: Any) -> str:
    """A wrong value in a reason: short, one line, escaped (it may be 60 KB of nesting)."""
    try:
        text = repr(value)
    except RecursionError:
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__
