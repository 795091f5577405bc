"""Per-client options for dictation formatting, and the timed-word input type.

Options are a frozen dataclass validated on construction, so a bad client
configuration fails when it is loaded (with :class:`ConfigError`), not halfway
through a night's batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal, Protocol

from transcribe.dictation.commands import GROUPS, Action, key_parts, known_phrases, phrase_keys
from transcribe.errors import ConfigError

LANGUAGES = ("fr", "en")


class TimedWordLike(Protocol):
    """Anything with Whisper's word fields (faster-whisper's ``Word`` fits)."""

    @property
    def word(self) -> str: ...

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...


@dataclass(frozen=True)
class TimedWord:
    """One recognised word with its times in seconds, as Whisper reports it."""

    word: str
    start: float
    end: float
    probability: float | None = None


@dataclass(frozen=True)
class DictationOptions:
    """How one client wants dictation turned into text.

    ``disabled`` holds action names (``"comma"``, ``"new_paragraph"``...), group
    names (``"punctuation"``, ``"layout"``, ``"parentheses"``, ``"quotes"``,
    ``"dashes"``) or built-in phrases (``"tiret"``); those stay as words.
    ``extra`` maps a spoken phrase to the text it writes (``"\\n"`` breaks a line);
    it wins over a built-in phrase. ``pause_s`` is the silence that counts as a
    pause around an ambiguous command word when word timings are given.
    ``french_small_numbers`` is "words" (a lone number below ten stays a word in
    running text: "les deux licences") or "digits" (every number in digits).
    ``currency_sign`` writes "1 500 €" for "1 500 euros"; ``abbreviate_titles``
    writes "Dr Martin" and "Pr Durand" (both French only, off by default).
    """

    commands: bool = True
    disabled: frozenset[str] = frozenset()
    extra: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    numbers: bool = True
    english_quotes: Literal["curly", "straight"] = "curly"
    salutation_line: bool = True
    pause_s: float = 0.3
    no_pause_s: float = 0.08
    french_small_numbers: Literal["words", "digits"] = "words"
    currency_sign: bool = False
    abbreviate_titles: bool = False

    def __post_init__(self) -> None:
        for name in (
            "commands",
            "numbers",
            "salutation_line",
            "currency_sign",
            "abbreviate_titles",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"dictation option {name!r} must be true or false")
        for name in ("pause_s", "no_pause_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"dictation option {name!r} must be a number of seconds")
        disabled = self.disabled
        if (
            isinstance(disabled, str)
            or not isinstance(disabled, Iterable)
            or not all(isinstance(d, str) for d in disabled)
        ):
            raise ConfigError("dictation option 'disabled' must be a collection of names")
        object.__setattr__(self, "disabled", frozenset(s.strip().lower() for s in self.disabled))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        self._check_disabled()
        self._check_extra()
        if self.english_quotes not in ("curly", "straight"):
            raise ConfigError(
                f"english_quotes must be 'curly' or 'straight', not {self.english_quotes!r}"
            )
        if self.french_small_numbers not in ("words", "digits"):
            raise ConfigError(
                "french_small_numbers must be 'words' or 'digits', "
                f"not {self.french_small_numbers!r}"
            )
        if not (math.isfinite(self.pause_s) and 0 <= self.no_pause_s <= self.pause_s <= 5):
            raise ConfigError(
                "pause thresholds must satisfy 0 <= no_pause_s <= pause_s <= 5 seconds"
            )

    def _check_disabled(self) -> None:
        names = {a.value for a in Action} | set(GROUPS)
        phrases = known_phrases()
        unknown = sorted(
            n for n in self.disabled if n not in names and phrase_keys(n) not in phrases
        )
        if unknown:
            raise ConfigError(
                f"unknown dictation command(s) to disable: {', '.join(unknown)}",
                hint="use an action name, a group name or a built-in phrase",
            )

    def _check_extra(self) -> None:
        for phrase, output in self.extra.items():
            if not isinstance(phrase, str) or not isinstance(output, str):
                raise ConfigError(f"extra dictation command {phrase!r} must map text to text")
            if not any(re.search(r"\w", part) for part in key_parts(phrase)):
                raise ConfigError(f"extra dictation command {phrase!r} has no words to recognise")

    def disabled_phrases(self) -> frozenset[tuple[str, ...]]:
        """The built-in phrases switched off, as matching keys."""
        return frozenset(phrase_keys(name) for name in self.disabled)

    def disabled_actions(self) -> frozenset[Action]:
        """The actions switched off, groups expanded."""
        out: set[Action] = set()
        for name in self.disabled:
            if name in GROUPS:
                out |= GROUPS[name]
            elif name in Action._value2member_map_:
                out.add(Action(name))
        return frozenset(out)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DictationOptions:
        """Build options from a client's configuration table (TOML or JSON).

        Unknown keys are refused: a typo in a client file must not silently turn
        a command back on.
        """
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown dictation option(s): {', '.join(unknown)}")
        values = dict(data)
        if "disabled" in values:
            disabled = values["disabled"]
            if isinstance(disabled, str) or not isinstance(
                disabled, list | tuple | set | frozenset
            ):
                raise ConfigError("dictation option 'disabled' must be a list of names")
            values["disabled"] = frozenset(disabled)
        if "extra" in values and not isinstance(values["extra"], Mapping):
            raise ConfigError("dictation option 'extra' must map spoken phrases to text")
        return cls(**values)


def normalise_lang(lang: str) -> str:
    """Accept "fr", "FR", "fr-FR", "en_GB"...; refuse what we cannot format."""
    code = lang.strip().lower().replace("_", "-").split("-")[0]
    if code not in LANGUAGES:
        raise ConfigError(f"dictation language {lang!r} is not supported", hint="use fr or en")
    return code
