"""Dictation post-processing: what Whisper prints -> the letter a secretary types.

Spoken commands ("virgule", "point à la ligne", "new paragraph", "ouvrez les
guillemets"...) become punctuation and layout; numbers, units and dates become
digits and symbols ("deux virgule cinq milligrammes" -> "2,5 mg"); the words that
only sound like commands ("deux points de suture", "colon cancer", "a period of
three weeks") stay words. Pure text: no Whisper needed. See :mod:`.render` for
the typography choices and :class:`DictationOptions` for per-client settings.
"""

from __future__ import annotations

from transcribe.dictation.api import format_dictation, format_words
from transcribe.dictation.commands import Action
from transcribe.dictation.options import DictationOptions, TimedWord, TimedWordLike

__all__ = [
    "Action",
    "DictationOptions",
    "TimedWord",
    "TimedWordLike",
    "format_dictation",
    "format_words",
]
