"""Review settings: doubt threshold, audio window, lock timeout, player, key map.

They live in an optional ``review-keys.toml`` in the workspace home, so a secretariat
can remap keys (a foot pedal that sends F9/F10/F11, an AZERTY habit) without
touching the workspace configuration. Every key is optional::

    threshold = 0.6          # words Whisper gave a lower probability are doubtful
    context_s = 1.5          # audio played before and after the current word
    replay_s = 5.0           # "replay" starts this many seconds before the word
    lock_timeout_min = 15    # a silent reviewer's lock may be taken over after this
    player = "ffplay -nodisp -autoexit -loglevel quiet {file}"   # "" turns audio off

    [keys]                   # action = [keys]; names as prompt_toolkit spells them
    play = ["space", "f9"]
    replay = ["r", "f10"]
    pause = ["p", "f11"]

Key names: a character (``"n"``, ``"?"``, ``"A"``), ``space``, ``tab``, ``s-tab``,
``enter``, ``escape``, ``up``/``down``/``left``/``right``, ``f1``..``f24``, ``c-x``
(Ctrl-x). Actions not listed keep their default keys.
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SETTINGS_NAME = "review-keys.toml"


@dataclass(frozen=True)
class Action:
    """Something a key does in the job view, with its help text in both languages."""

    name: str
    keys: tuple[str, ...]
    help_en: str
    help_fr: str
    short_en: str
    short_fr: str


ACTIONS: tuple[Action, ...] = (
    Action(
        "next_doubtful",
        ("tab", "n", "f8"),
        "Next doubtful word",
        "Mot douteux suivant",
        "doubt",
        "doute",
    ),
    Action(
        "prev_doubtful",
        ("s-tab", "N"),
        "Previous doubtful word",
        "Mot douteux précédent",
        "doubt",
        "doute",
    ),
    Action("next_word", ("right", "l"), "Next word", "Mot suivant", "word", "mot"),
    Action("prev_word", ("left", "h"), "Previous word", "Mot précédent", "word", "mot"),
    Action("next_segment", ("down", "j"), "Next sentence", "Phrase suivante", "sentence", "phrase"),
    Action(
        "prev_segment", ("up", "k"), "Previous sentence", "Phrase précédente", "sentence", "phrase"
    ),
    Action(
        "play",
        ("space", "f9"),
        "Play the audio around the current word",
        "Écouter l'audio autour du mot courant",
        "play",
        "lire",
    ),
    Action(
        "replay",
        ("r", "f10"),
        "Replay from a few seconds before the current word",
        "Réécouter depuis quelques secondes avant le mot",
        "replay",
        "relire",
    ),
    Action("pause", ("p", "f11"), "Pause the audio", "Mettre l'audio en pause", "pause", "pause"),
    Action("slower", ("-",), "Play slower", "Lecture plus lente", "speed", "vitesse"),
    Action("faster", ("+", "="), "Play faster", "Lecture plus rapide", "speed", "vitesse"),
    Action(
        "edit_word",
        ("c",),
        "Correct the current word",
        "Corriger le mot courant",
        "fix word",
        "corriger",
    ),
    Action(
        "edit_segment",
        ("e", "enter"),
        "Edit the current sentence inline",
        "Modifier la phrase courante",
        "edit",
        "modifier",
    ),
    Action(
        "edit_all",
        ("E",),
        "Edit the whole text in $EDITOR",
        "Modifier tout le texte dans $EDITOR",
        "editor",
        "éditeur",
    ),
    Action(
        "field", ("f",), "Fill or change a field", "Remplir ou changer un champ", "field", "champ"
    ),
    Action(
        "approve",
        ("A",),
        "Approve the letter (required fields must be filled)",
        "Valider le courrier (champs obligatoires remplis)",
        "approve",
        "valider",
    ),
    Action(
        "query",
        ("Q",),
        "Send back to the author with a question",
        "Renvoyer à l'auteur avec une question",
        "ask",
        "question",
    ),
    Action(
        "save_leave",
        ("q", "c-c"),
        "Save and leave (back to the list)",
        "Enregistrer et quitter (retour à la liste)",
        "leave",
        "quitter",
    ),
    Action("help", ("?", "f1"), "Show this help", "Afficher cette aide", "help", "aide"),
)
ACTION_NAMES = tuple(a.name for a in ACTIONS)
TOP_KEYS = {"threshold", "context_s", "replay_s", "lock_timeout_min", "player", "keys"}


@dataclass(frozen=True)
class ReviewSettings:
    """Everything the review loop can be told; defaults suit a French secretariat."""

    threshold: float = 0.6
    context_s: float = 1.5
    replay_s: float = 5.0
    lock_timeout_s: float = 15 * 60.0
    player: tuple[str, ...] | None = None  # None: detect; (): audio off
    keys: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {a.name: a.keys for a in ACTIONS}
    )


def _number(raw: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{SETTINGS_NAME}: {key} must be a number in {low}..{high}")
    return float(value)


def _keys(raw: Any) -> dict[str, tuple[str, ...]]:
    keys = {a.name: a.keys for a in ACTIONS}
    if not isinstance(raw, dict):
        raise ConfigError(f"{SETTINGS_NAME}: [keys] must be a table")
    for action, value in raw.items():
        if action not in keys:
            raise ConfigError(
                f"{SETTINGS_NAME}: unknown action {action!r} in [keys]",
                hint=f"actions: {', '.join(ACTION_NAMES)}",
            )
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(k, str) and k for k in value):
            raise ConfigError(f"{SETTINGS_NAME}: [keys] {action} must be a list of key names")
        keys[action] = tuple(value)
    seen: dict[str, str] = {}
    for action, names in keys.items():
        for name in names:
            if name in seen:
                raise ConfigError(
                    f"{SETTINGS_NAME}: key {name!r} is given to both {seen[name]} and {action}"
                )
            seen[name] = action
    return keys


def _player(raw: dict[str, Any]) -> tuple[str, ...] | None:
    if "player" not in raw:
        return None
    value = raw["player"]
    if not isinstance(value, str):
        raise ConfigError(f'{SETTINGS_NAME}: player must be a command line (or "" for none)')
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise ConfigError(f"{SETTINGS_NAME}: player: {exc}") from None


def parse_settings(raw: dict[str, Any]) -> ReviewSettings:
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{SETTINGS_NAME}: unknown key {unknown[0]!r}")
    defaults = ReviewSettings()
    return ReviewSettings(
        threshold=_number(raw, "threshold", defaults.threshold, 0.0, 1.0),
        context_s=_number(raw, "context_s", defaults.context_s, 0.0, 30.0),
        replay_s=_number(raw, "replay_s", defaults.replay_s, 0.0, 60.0),
        lock_timeout_s=60.0
        * _number(raw, "lock_timeout_min", defaults.lock_timeout_s / 60.0, 1.0, 24 * 60.0),
        player=_player(raw),
        keys=_keys(raw.get("keys", {})),
    )


def load_settings(home: Path) -> ReviewSettings:
    """``<home>/review-keys.toml`` if present, else the defaults."""
    path = home / SETTINGS_NAME
    if not path.is_file():
        return ReviewSettings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_settings(raw)
