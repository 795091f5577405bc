"""The review screen speaks French when the locale is French, English otherwise.

Secretaries work in their own language; the locale is the standard way a terminal
says which one. Only the screen is translated: logs, errors from the rest of the
library and file contents stay as they are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

LANG_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")

STRINGS: dict[str, tuple[str, str]] = {
    # key: (English, French)
    "queue_title": ("Jobs waiting for review", "Dictées à relire"),
    "queue_empty": ("No job is waiting for review.", "Aucune dictée à relire."),
    "queue_columns": (
        "client|author|document|length|age|doubt",
        "client|auteur|document|durée|âge|doute",
    ),
    "queue_keys": (
        "Up/Down choose  Enter open  g refresh  q quit  ? help",
        "Haut/Bas choisir  Entrée ouvrir  g actualiser  q quitter  ? aide",
    ),
    "locked_by": ("locked by {who}", "verrouillé par {who}"),
    "doubtful": ("doubtful", "douteux"),
    "urgent": ("URGENT", "URGENT"),
    "fields": ("Fields", "Champs"),
    "required": ("required", "obligatoire"),
    "automatic": ("automatic", "automatique"),
    "missing": ("missing", "à remplir"),
    "fill_first": ("Fill first: {names}", "À remplir d'abord : {names}"),
    "no_template": ("no template: no field required", "pas de modèle : aucun champ requis"),
    "no_player": (
        "No audio player found (ffplay, paplay, aplay, afplay): audio is off.",
        "Aucun lecteur audio (ffplay, paplay, aplay, afplay) : pas de son.",
    ),
    "no_audio": ("The audio of this job is not available.", "L'audio de ce travail est absent."),
    "playing": (
        "Playing {start:.1f}-{end:.1f} s at x{speed:g}",
        "Lecture {start:.1f}-{end:.1f} s à x{speed:g}",
    ),
    "paused": ("Paused.", "Pause."),
    "speed": ("Playback speed x{speed:g}", "Vitesse de lecture x{speed:g}"),
    "no_more_doubtful": ("No other doubtful word.", "Plus aucun mot douteux."),
    "wrapped": ("Back to the start.", "Retour au début."),
    "saved": ("Saved.", "Enregistré."),
    "edit_word": ("Word: ", "Mot : "),
    "edit_segment": ("Sentence: ", "Phrase : "),
    "field_prompt": ("Field (number or name): ", "Champ (numéro ou nom) : "),
    "value_prompt": ("{name}: ", "{name} : "),
    "unknown_field": (
        "No field {name!r} in this letter.",
        "Pas de champ {name!r} dans ce courrier.",
    ),
    "question_prompt": ("Question for the author: ", "Question pour l'auteur : "),
    "confirm_approve": ("Approve this letter? (y/n) ", "Valider ce courrier ? (o/n) "),
    "approved": ("Job {job} approved.", "Travail {job} validé."),
    "sent_back": ("Job {job} sent back to the author.", "Travail {job} renvoyé à l'auteur."),
    "cancelled": ("Cancelled.", "Annulé."),
    "unknown_key": (
        "Key {key!r} does nothing here: ? for help.",
        "La touche {key!r} ne fait rien ici : ? pour l'aide.",
    ),
    "help_title": ("Keys (any key closes this help)", "Touches (une touche ferme cette aide)"),
    "editor_failed": ("The editor failed: {error}", "L'éditeur a échoué : {error}"),
    "error": ("Error: {error}", "Erreur : {error}"),
    "internal_error": (
        "Internal error ({error}); your work is saved.",
        "Erreur interne ({error}) ; votre travail est enregistré.",
    ),
    "yes": ("y", "o"),
    "empty_text": ("The text is empty.", "Le texte est vide."),
    "lock_lost": ("Your lock was taken over: {error}", "Votre verrou a été repris : {error}"),
    "prompt_keys": ("Enter accept  Esc cancel", "Entrée valider  Échap annuler"),
    "warning": ("Warning", "Attention"),
    "warnings": ("warnings", "alertes"),
    "sync_saving": ("saving…", "enregistrement…"),
    "sync_offline": (
        "OFFLINE: edits kept here, sent when the server is back",
        "HORS LIGNE : modifications gardées ici, envoyées au retour du serveur",
    ),
    "sync_lease_lost": (
        "LOCK LOST: edits kept here; someone else holds the job",
        "VERROU PERDU : modifications gardées ici ; quelqu'un d'autre a repris le travail",
    ),
    "sync_conflict": (
        "CONFLICT: the draft changed on the server; leave and reopen",
        "CONFLIT : le brouillon a changé sur le serveur ; quittez et rouvrez",
    ),
    "resumed": (
        "Edits not yet saved last time were kept here and are being saved now.",
        "Les modifications non enregistrées la dernière fois ont été gardées et sont envoyées.",
    ),
    "conflict": (
        "The draft changed on the server: your unsaved edits are kept in {file}",
        "Le brouillon a changé sur le serveur : vos modifications sont gardées dans {file}",
    ),
    "look_first": (
        "{count} unreliable passage(s) (magenta) not looked at yet: Tab goes there.",
        "{count} passage(s) peu fiable(s) (en magenta) pas encore vu(s) : Tab pour y aller.",
    ),
}


def is_french(environ: Mapping[str, str] | None = None) -> bool:
    """The first locale variable set decides, as the C library does."""
    environ = os.environ if environ is None else environ
    for name in LANG_VARIABLES:
        value = environ.get(name, "")
        if value:
            return value.lower().startswith("fr")
    return False


class Messages:
    """``messages("key", **values)``: the string for the screen's language."""

    def __init__(self, french: bool) -> None:
        self.french = french

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Messages:
        return cls(is_french(environ))

    def __call__(self, name: str, /, **values: object) -> str:
        english, french = STRINGS[name]
        text = french if self.french else english
        return text.format(**values) if values else text
