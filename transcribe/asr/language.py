"""Which language to transcribe a dictation in, and what to tell the secretary.

A client's ``language`` (or its author's, or the sidecar's) says what is expected,
but a dictation dropped into the wrong folder, or a doctor who switches to English
for a foreign colleague, is real. Transcribed in the wrong language, Whisper writes
nonsense and, with that language's vocabulary in its prompt, echoes the prompt in a
loop. So Whisper's language detection runs on every dictation (the first window's
encoder output, which the decoding reuses: nearly free) and:

* when it confidently hears another language, the dictation is transcribed in that
  language, with that language's vocabulary, and says so;
* when it is unsure, the dictation is transcribed as configured, and says so;
* with ``auto``, it is transcribed in what Whisper hears.

Thresholds measured on the shared sets with the base model: real French and English
read speech of 3 s or more is detected at 0.54-0.999 for its own language and never
above 0.05 for the other; clips under 2.5 s were heard as English at up to 0.72.
Hence a switch needs 0.8 for the heard language, under 0.05 for the configured one
and at least 4 s of speech.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SWITCH_PROBABILITY = 0.8
CONFIGURED_AT_MOST = 0.05
MIN_SPEECH_S = 4.0
UNCLEAR_BELOW = 0.5
NAMES = {"fr": "French", "en": "English", "de": "German", "es": "Spanish", "it": "Italian"}


@dataclass(frozen=True)
class LanguageChoice:
    """The language to transcribe in, what was expected and heard, and any warning."""

    language: str
    configured: str | None  # "fr", "en", or None for auto
    heard: str
    probability: float  # of the language heard
    top: tuple[tuple[str, float], ...]
    warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "transcribed_in": self.language,
            "configured": self.configured or "auto",
            "detected": self.heard,
            "probability": round(self.probability, 4),
            "candidates": [[lang, round(p, 4)] for lang, p in self.top],
            "warning": self.warning,
        }


def name(language: str) -> str:
    return NAMES.get(language, language)


def choose_language(
    configured: str | None,
    probabilities: Sequence[tuple[str, float]],
    speech_s: float,
    *,
    whose: str = "the client's",
) -> LanguageChoice:
    """Decide from the configured language and Whisper's probabilities (best first)."""
    configured = configured if configured in ("fr", "en") else None
    if not probabilities:  # no speech: nothing was heard, nothing to decide
        return LanguageChoice(configured or "fr", configured, configured or "fr", 0.0, ())
    heard, probability = probabilities[0]
    top = tuple(probabilities[:3])
    if configured is None:
        warning = None if probability >= UNCLEAR_BELOW else _unclear(top, None)
        return LanguageChoice(heard, None, heard, probability, top, warning)
    if heard == configured:
        return LanguageChoice(configured, configured, heard, probability, top)
    expected = dict(probabilities).get(configured, 0.0)
    if (
        probability >= SWITCH_PROBABILITY
        and expected <= CONFIGURED_AT_MOST
        and speech_s >= MIN_SPEECH_S
    ):
        warning = f"dictated in {name(heard)}; {whose} language is {name(configured)}"
        return LanguageChoice(heard, configured, heard, probability, top, warning)
    warning = _unclear(top, configured) if expected < UNCLEAR_BELOW else None
    return LanguageChoice(configured, configured, heard, probability, top, warning)


def _unclear(top: Sequence[tuple[str, float]], configured: str | None) -> str:
    heard = ", ".join(f"{name(lang)} {round(100 * p)}%" for lang, p in top[:2])
    then = f"transcribed in {name(configured)} as configured" if configured else "transcribed"
    return f"language unclear ({heard}); {then}"
