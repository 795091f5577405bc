"""The vocabulary of one dictation: who it comes from and which terms matter most.

A :class:`Vocabulary` merges five sources into one ranked, deduplicated list.
The ranking is the order in which terms go into Whisper's prompt, where only a
few dozen fit, so it encodes how specific a source is to this dictation:

1. ``author``: the dictating doctor's or lawyer's own list (names of colleagues,
   the drugs they prescribe every day): the most specific.
2. ``approved``: terms of the author's own approved letters, most used lately
   first (see :mod:`transcribe.vocabulary.authors`): what they really dictate.
3. ``learned``: terms the secretaries had to correct repeatedly for this
   client/author (see :mod:`transcribe.vocabulary.learning`): proven misses.
4. ``client``: the practice's list, shared by its authors.
5. ``domain``: the shipped medical/legal lexicon, by weight then file order.

A term listed by several sources keeps its highest-ranked source.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from transcribe.vocabulary.lexicon import (
    LexiconEntry,
    check_domain,
    read_lexicon_file,
    shipped_lexicon,
)

# A client or author list from configuration: inline terms or a path to a file.
TermList = Sequence[str] | str | os.PathLike[str] | None


class TermSource(StrEnum):
    """Where a term comes from; the declaration order is the prompt ranking."""

    AUTHOR = "author"
    APPROVED = "approved"
    LEARNED = "learned"
    CLIENT = "client"
    DOMAIN = "domain"


_RANK = {source: rank for rank, source in enumerate(TermSource)}


@dataclass(frozen=True)
class Term:
    """A term as it should be written, with what decides its place in the prompt."""

    text: str
    source: TermSource
    weight: int = 1
    category: str = ""

    @property
    def key(self) -> str:
        """Identity for deduplication: case and spacing do not make a new term."""
        return " ".join(self.text.casefold().split())


@dataclass(frozen=True)
class Vocabulary:
    """Ranked, deduplicated terms for one domain, language, client and author."""

    domain: str
    lang: str
    terms: tuple[Term, ...]

    def __iter__(self) -> Iterator[Term]:
        return iter(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def texts(self) -> list[str]:
        """The terms as written, in rank order."""
        return [term.text for term in self.terms]

    def from_source(self, source: TermSource) -> list[Term]:
        """The terms that one source contributed (after deduplication)."""
        return [term for term in self.terms if term.source is source]


def rank_terms(terms: Iterable[Term]) -> tuple[Term, ...]:
    """Order by source rank, then weight (heaviest first), then given order.

    Python's sort is stable, so the order of a client's own file is kept among
    terms of equal source and weight: the client decides what matters most.
    """
    ordered = sorted(terms, key=lambda t: (_RANK[t.source], -t.weight))
    seen: set[str] = set()
    unique: list[Term] = []
    for term in ordered:
        if term.key not in seen:
            seen.add(term.key)
            unique.append(term)
    return tuple(unique)


def resolve_term_list(
    terms: TermList, source: TermSource, *, base_dir: Path | None = None
) -> list[Term]:
    """Turn an inline list or a file path from configuration into terms.

    A plain string is a path (relative to ``base_dir``, the client folder); a
    list is inline terms, so a single inline term must be given as a list.
    """
    if terms is None:
        return []
    if isinstance(terms, str | os.PathLike):
        path = Path(terms).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return _entries_to_terms(read_lexicon_file(path), source)
    cleaned = (" ".join(str(text).split()) for text in terms)
    return [Term(text, source) for text in cleaned if text]


def _entries_to_terms(entries: Iterable[LexiconEntry], source: TermSource) -> list[Term]:
    return [Term(e.text, source, e.weight, e.category) for e in entries]


def load_vocabulary(
    domain: str,
    lang: str,
    *,
    client_terms: TermList = None,
    author_terms: TermList = None,
    learned_terms: Sequence[str] = (),
    approved_terms: Sequence[str] = (),
    base_dir: Path | None = None,
) -> Vocabulary:
    """Build the vocabulary for one dictation; raises ConfigError on bad input.

    ``learned_terms`` come from the learning store, already ordered by how often
    they were corrected, and ``approved_terms`` from the author's approved letters,
    best first; they are not re-read from a file here.
    """
    check_domain(domain, lang)
    terms = [
        *resolve_term_list(author_terms, TermSource.AUTHOR, base_dir=base_dir),
        *resolve_term_list(list(approved_terms), TermSource.APPROVED),
        *resolve_term_list(list(learned_terms), TermSource.LEARNED),
        *resolve_term_list(client_terms, TermSource.CLIENT, base_dir=base_dir),
        *_entries_to_terms(shipped_lexicon(domain, lang), TermSource.DOMAIN),
    ]
    return Vocabulary(domain=domain, lang=lang, terms=rank_terms(terms))
