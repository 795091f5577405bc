"""Each author's own words: terms of their approved letters lead their next prompts.

A doctor who prescribes tocilizumab every week should not depend on it being among
the few dozen lexicon terms that fit Whisper's prompt. Every approved letter is read
for terms (:func:`~transcribe.vocabulary.extract.extract_terms`: lexicon phrases,
drug-shaped words, legal references; never a field value or a name), and each term
is counted once per letter for that client and author. Once a term has been used in
``min_letters`` letters it joins the author's vocabulary, ranked by

    score = count * 0.5 ** (days since last used / half_life_days)

so a term used often *and* lately comes first, and one the author stopped using
fades (it halves every 90 days by default). The ``prompt_terms`` best lead the
prompt, right after the author's configured terms.

Storage: ``author-terms.json`` beside ``learned.json`` in the workspace, written
the same way (owner-only, atomic, under a lock file). It holds vocabulary keyed by
client and author, never a patient's or matter's name; :func:`forget_author`
purges an author from both files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

from transcribe.errors import ConfigError, StoreError
from transcribe.fsutil import atomic_write_json
from transcribe.vocabulary.extract import extract_terms, fold
from transcribe.vocabulary.learning import LEARNED_NAME, LearningStore, author_key, locked

AUTHOR_TERMS_NAME = "author-terms.json"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class AuthorTermOptions:
    """How author terms are ranked, capped and let into the prompt."""

    half_life_days: float = 90.0
    max_terms: int = 500
    min_letters: int = 2
    prompt_terms: int = 30

    def __post_init__(self) -> None:
        if self.half_life_days <= 0 or min(self.max_terms, self.min_letters) < 1:
            raise ConfigError("author terms: half-life, cap and min_letters must be positive")
        if self.prompt_terms < 0:
            raise ConfigError("author terms: prompt_terms must not be negative")


@dataclass(frozen=True)
class TermUsage:
    """How often (in how many approved letters) and when an author used a term."""

    count: int
    first_seen: str
    last_used: str

    def score(self, today: date, half_life_days: float) -> float:
        """The count, halved for every ``half_life_days`` since it was last used."""
        age = max(0, (today - date.fromisoformat(self.last_used)).days)
        return self.count * 0.5 ** (age / half_life_days)


# client -> author key -> term -> usage, as the file holds it
_Table = dict[str, dict[str, dict[str, TermUsage]]]


@dataclass(frozen=True)
class AuthorTerm:
    """A term with its usage and its score on the day asked."""

    text: str
    usage: TermUsage
    score: float


class Auditor(Protocol):
    """The job store's audit trail (``JobStore.record``)."""

    def record(self, action: str, job_id: str | None = None, detail: str | None = None) -> None:
        """Audit an action; ``detail`` never holds personal data."""


class AuthorTermStore:
    """Terms of each client's authors, in one JSON file chosen by the caller."""

    def __init__(self, path: Path, *, options: AuthorTermOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or AuthorTermOptions()

    def _read(self) -> _Table:
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"author terms file is unreadable: {self.path}",
                hint="restore it from a backup or remove it to start learning afresh",
            ) from exc
        if not isinstance(payload, dict) or payload.get("version") != _FORMAT_VERSION:
            raise StoreError(f"author terms file has an unknown format: {self.path}")
        try:
            return {
                client: {
                    author: {term: TermUsage(**usage) for term, usage in terms.items()}
                    for author, terms in authors.items()
                }
                for client, authors in payload["clients"].items()
            }
        except (AttributeError, KeyError, TypeError) as exc:
            raise StoreError(f"author terms file is malformed: {self.path}") from exc

    def _write(self, table: _Table) -> None:
        clients = {
            client: {
                author: {term: asdict(usage) for term, usage in terms.items()}
                for author, terms in authors.items()
                if terms
            }
            for client, authors in table.items()
        }
        clients = {client: authors for client, authors in clients.items() if authors}
        atomic_write_json(self.path, {"version": _FORMAT_VERSION, "clients": clients})

    def add(
        self, client: str, author: str | None, terms: Iterable[str], *, day: date | None = None
    ) -> None:
        """Count one approved letter's terms once each; keep the ``max_terms`` best."""
        terms = list(dict.fromkeys(terms))
        if not terms or not author_key(author):
            return
        day = day or date.today()
        with locked(self.path):
            table = self._read()
            own = table.setdefault(client, {}).setdefault(author_key(author), {})
            for term in terms:
                _count(own, term, day.isoformat())
            if len(own) > self.options.max_terms:
                kept = self._ranked(own, day)[: self.options.max_terms]
                table[client][author_key(author)] = {t.text: t.usage for t in kept}
            self._write(table)

    def _ranked(self, terms: dict[str, TermUsage], today: date) -> list[AuthorTerm]:
        ranked = [
            AuthorTerm(text, usage, usage.score(today, self.options.half_life_days))
            for text, usage in terms.items()
        ]
        return sorted(ranked, key=lambda t: (-t.score, -t.usage.count, t.text))

    def terms(
        self, client: str, author: str | None, *, today: date | None = None
    ) -> list[AuthorTerm]:
        """An author's terms, best first (all of them, however often used)."""
        own = self._read().get(client, {}).get(author_key(author), {})
        return self._ranked(own, today or date.today())

    def prompt_terms(
        self, client: str, author: str | None, *, today: date | None = None
    ) -> list[str]:
        """The terms that lead this author's prompt: used in ``min_letters`` letters."""
        if not author_key(author):
            return []
        ranked = self.terms(client, author, today=today)
        used = [t.text for t in ranked if t.usage.count >= self.options.min_letters]
        return used[: self.options.prompt_terms]

    def forget_author(self, client: str, author: str) -> int:
        """Remove every term of one author of a client; returns how many."""
        with locked(self.path):
            table = self._read()
            gone = table.get(client, {}).pop(author_key(author), {})
            if gone:
                self._write(table)
        return len(gone)


def _count(own: dict[str, TermUsage], term: str, day: str) -> None:
    """One more letter for ``term``, under its latest spelling ("Code civil")."""
    known = next((text for text in own if fold(text) == fold(term)), None)
    usage = own.pop(known) if known is not None else TermUsage(0, day, day)
    own[term] = TermUsage(usage.count + 1, usage.first_seen, max(usage.last_used, day))


# -- the workspace's stores ------------------------------------------------------


def author_terms_store(home: Path) -> AuthorTermStore:
    return AuthorTermStore(home / AUTHOR_TERMS_NAME)


def learn_author_terms(
    home: Path,
    client: str,
    author: str | None,
    text: str,
    *,
    domain: str,
    lang: str,
    private: Iterable[str] = (),
    day: date | None = None,
) -> list[str]:
    """Count the terms of one approved letter for its author; returns them.

    ``private`` is every field value of the letter and its author's name: the
    fields are the authority on who the letter is about.
    """
    if not author_key(author):
        return []
    private = [*private, author or ""]
    terms = extract_terms(text, domain=domain, lang=lang, private=private)
    author_terms_store(home).add(client, author, terms, day=day)
    return terms


def approved_terms(home: Path, client: str, author: str | None) -> list[str]:
    """The author's learnt terms for the prompt of their next dictation."""
    return author_terms_store(home).prompt_terms(client, author)


@dataclass(frozen=True)
class Forgotten:
    """How many learnt corrections and terms a purge removed."""

    corrections: int
    terms: int


def forget_author(home: Path, client: str, author: str, *, audit: Auditor) -> Forgotten:
    """Purge what was learnt from one author of a client: corrections and terms.

    The audit entry names the client and the counts, not the author: the trail
    must not keep what was just purged.
    """
    if not author_key(author):
        raise ConfigError("name the author to forget")
    forgotten = Forgotten(
        corrections=LearningStore(home / LEARNED_NAME).forget_author(client, author),
        terms=author_terms_store(home).forget_author(client, author),
    )
    audit.record(
        "vocabulary-forget-author",
        detail=f"client {client}: {forgotten.corrections} correction(s), "
        f"{forgotten.terms} term(s) forgotten",
    )
    return forgotten
