"""Learn from the secretaries' corrections and apply them to later drafts.

When a secretary fixes the same phrase the same way N times (default 2) for a
client and author, that fix is applied automatically to that author's later
drafts (marked ``source: "learned"`` for review) and the corrected phrase joins
the Whisper prompt as a learned term. Counting before applying keeps one-off
edits (a patient's name, a changed dose) out of future letters.

Safety rules for what may be learnt at all: no digits (doses, dates, amounts
are facts of one letter, not vocabulary), no phrase made only of common words
(grammar edits), at most ``max_words`` words on either side.

Storage is one JSON file the caller chooses, written atomically under a lock
file so two review sessions cannot lose each other's updates.
"""

from __future__ import annotations

import difflib
import fcntl
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transcribe.errors import ConfigError, StoreError
from transcribe.fsutil import atomic_write_json
from transcribe.vocabulary.correct import CorrectionResult, Replacement, common_words
from transcribe.vocabulary.normalise import compact_key, normalise_words
from transcribe.vocabulary.words import as_word_dict, ends_clause, replace_span, split_edges

LEARNED_SOURCE = "learned"
LEARNED_NAME = "learned.json"  # in the workspace home
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LearningOptions:
    """When a correction becomes a rule, and how far it reaches."""

    min_count: int = 2
    max_words: int = 3
    share_across_authors: bool = False

    def __post_init__(self) -> None:
        if self.min_count < 1 or self.max_words < 1:
            raise ConfigError("learning min_count and max_words must be at least 1")


def _words(text: str) -> set[str]:
    return {w.casefold() for w in re.findall(r"\w{3,}", text)}


@dataclass(frozen=True)
class CorrectionPair:
    """A phrase Whisper wrote and what the secretary replaced it with."""

    wrong: str
    right: str


@dataclass(frozen=True)
class LearnedEntry:
    """One stored correction for a client and author ("" when no author is known)."""

    client: str
    author: str
    wrong: str
    right: str
    count: int
    first_seen: str
    last_seen: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.client, self.author, phrase_key(self.wrong), self.right)


def phrase_key(text: str) -> str:
    """Match phrases whatever their case, accents or punctuation."""
    return " ".join(normalise_words(text))


def _core_words(text: str) -> list[str]:
    """Words without surrounding punctuation, so "prolol," matches "prolol"."""
    cores = (split_edges(token)[1] for token in text.split())
    return [core for core in cores if core]


def _learnable(pair: CorrectionPair, common: frozenset[str]) -> bool:
    if any(ch.isdigit() for ch in pair.wrong + pair.right):
        return False
    if len(compact_key(pair.wrong)) < 3 or len(compact_key(pair.right)) < 3:
        return False
    return not any(
        all(word in common for word in normalise_words(side)) for side in (pair.wrong, pair.right)
    )


def diff_corrections(
    original: str | Iterable[Mapping[str, Any] | Any],
    corrected: str,
    *,
    lang: str = "fr",
    max_words: int = 3,
) -> list[CorrectionPair]:
    """Word-aligned (wrong -> right) replacements between a draft and its correction.

    Only replacements count: an inserted or deleted phrase has no "wrong" side
    to recognise later. Case-only and punctuation-only edits are ignored.
    """
    if not isinstance(original, str):
        original = "".join(as_word_dict(w)["word"] for w in original)
    before, after = _core_words(original), _core_words(corrected)
    matcher = difflib.SequenceMatcher(
        None, [phrase_key(w) for w in before], [phrase_key(w) for w in after], autojunk=False
    )
    common = frozenset(compact_key(w) for w in common_words(lang))
    pairs: list[CorrectionPair] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "replace" or i2 - i1 > max_words or j2 - j1 > max_words:
            continue
        pair = CorrectionPair(" ".join(before[i1:i2]), " ".join(after[j1:j2]))
        if _learnable(pair, common):
            pairs.append(pair)
    return pairs


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write cycles of one JSON file between processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def author_key(author: str | None) -> str:
    """An author as stored, compared whatever the case and spacing ("" when unknown)."""
    return " ".join((author or "").casefold().split())


class LearningStore:
    """Corrections per client and author in one JSON file chosen by the caller."""

    def __init__(self, path: Path, *, options: LearningOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or LearningOptions()

    # -- storage ---------------------------------------------------------------

    def _locked(self) -> AbstractContextManager[None]:
        return locked(self.path)

    def _read(self) -> list[LearnedEntry]:
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"learned corrections file is unreadable: {self.path}",
                hint="restore it from a backup or remove it to start learning afresh",
            ) from exc
        if not isinstance(payload, dict) or payload.get("version") != _FORMAT_VERSION:
            raise StoreError(f"learned corrections file has an unknown format: {self.path}")
        try:
            return [LearnedEntry(**item) for item in payload["entries"]]
        except (KeyError, TypeError) as exc:
            raise StoreError(f"learned corrections file is malformed: {self.path}") from exc

    def _write(self, entries: Sequence[LearnedEntry]) -> None:
        payload = {"version": _FORMAT_VERSION, "entries": [asdict(e) for e in entries]}
        atomic_write_json(self.path, payload)

    # -- learning --------------------------------------------------------------

    def add(self, client: str, author: str | None, pairs: Iterable[CorrectionPair]) -> None:
        """Count each pair once more for this client and author."""
        pairs = list(pairs)
        if not pairs:
            return
        with self._locked():
            entries = {e.key: e for e in self._read()}
            stamp = _now()
            for pair in pairs:
                fresh = LearnedEntry(client, author or "", pair.wrong, pair.right, 1, stamp, stamp)
                known = entries.get(fresh.key)
                entries[fresh.key] = (
                    replace(known, count=known.count + 1, last_seen=stamp) if known else fresh
                )
            self._write(list(entries.values()))

    def record(
        self,
        client: str,
        author: str | None,
        original: str | Iterable[Mapping[str, Any] | Any],
        corrected: str,
        *,
        lang: str = "fr",
        exclude: Iterable[str] = (),
    ) -> list[CorrectionPair]:
        """Diff an approved text against its draft and count what was corrected.

        ``exclude`` holds personal values (the letter's patient, matter, recipient...):
        a correction touching one of their words is never stored, so this file, which
        is not encrypted, holds vocabulary and not the names of the people concerned.
        """
        pairs = diff_corrections(original, corrected, lang=lang, max_words=self.options.max_words)
        private = {w for value in exclude for w in _words(value)}
        pairs = [p for p in pairs if not private & _words(p.wrong + " " + p.right)]
        self.add(client, author, pairs)
        return pairs

    # -- listing and removal ---------------------------------------------------

    def entries(self, client: str | None = None, author: str | None = None) -> list[LearnedEntry]:
        """Stored corrections, most frequent first, optionally for one client/author."""
        found = [
            e
            for e in self._read()
            if (client is None or e.client == client) and (author is None or e.author == author)
        ]
        return sorted(found, key=lambda e: (-e.count, e.client, e.author, e.wrong))

    def remove(self, client: str, wrong: str, *, author: str | None = None) -> int:
        """Forget a correction (all authors of the client unless one is named)."""
        with self._locked():
            entries = self._read()
            keep = [
                e
                for e in entries
                if not (
                    e.client == client
                    and phrase_key(e.wrong) == phrase_key(wrong)
                    and (author is None or e.author == author)
                )
            ]
            if len(keep) != len(entries):
                self._write(keep)
        return len(entries) - len(keep)

    def forget_author(self, client: str, author: str) -> int:
        """Forget every correction learnt from one author of a client (purge)."""
        with self._locked():
            entries = self._read()
            keep = [
                e
                for e in entries
                if not (e.client == client and author_key(e.author) == author_key(author))
            ]
            if len(keep) != len(entries):
                self._write(keep)
        return len(entries) - len(keep)

    # -- applying --------------------------------------------------------------

    def rules(self, client: str, author: str | None) -> dict[str, tuple[str, int]]:
        """Active rules for a client and author: wrong phrase key -> (right, count).

        The author's own corrections come first; with ``share_across_authors``
        the counts of the client's other authors then fill in the rest. When one
        phrase was corrected in different ways, the most frequent way wins.
        """
        entries = self.entries(client)
        own = [e for e in entries if e.author == (author or "")]
        rules = self._rules_from(own)
        if self.options.share_across_authors:
            for wrong, rule in self._rules_from(entries).items():
                rules.setdefault(wrong, rule)
        return rules

    def _rules_from(self, entries: Iterable[LearnedEntry]) -> dict[str, tuple[str, int]]:
        counts: dict[tuple[str, str], int] = {}
        for entry in entries:
            key = (phrase_key(entry.wrong), entry.right)
            counts[key] = counts.get(key, 0) + entry.count
        rules: dict[str, tuple[str, int]] = {}
        for (wrong, right), count in sorted(counts.items(), key=lambda kv: -kv[1]):
            if count >= self.options.min_count and wrong not in rules:
                rules[wrong] = (right, count)
        return rules

    def learned_terms(self, client: str, author: str | None) -> list[str]:
        """Corrected phrases for the Whisper prompt, most frequently corrected first."""
        rights = (right for right, _ in self.rules(client, author).values())
        return list(dict.fromkeys(rights))

    def apply(
        self, words: Iterable[Mapping[str, Any] | Any], client: str, author: str | None
    ) -> CorrectionResult:
        """Replace phrases that have an active rule, whatever Whisper's confidence.

        A rule exists because secretaries already fixed that phrase repeatedly,
        so it applies even to confident words; it stays marked for review.
        """
        items = [as_word_dict(w) for w in words]
        return _apply_rules(items, self.rules(client, author), self.options.max_words)


def _match_at(
    items: Sequence[Mapping[str, Any]], i: int, rules: Mapping[str, tuple[str, int]], longest: int
) -> tuple[int, str, int] | None:
    """The longest rule matching at word ``i``: (end index, right, count)."""
    for end in range(min(len(items), i + longest), i, -1):
        span = items[i:end]
        if any("source" in w for w in span):
            continue
        if any(ends_clause(w["word"]) for w in span[:-1]):
            continue
        rule = rules.get(phrase_key(" ".join(split_edges(w["word"])[1] for w in span)))
        if rule is not None:
            return end, rule[0], rule[1]
    return None


def _apply_rules(
    items: list[dict[str, Any]], rules: Mapping[str, tuple[str, int]], longest: int
) -> CorrectionResult:
    out: list[dict[str, Any]] = []
    replacements: list[Replacement] = []
    i = 0
    while i < len(items):
        match = _match_at(items, i, rules, longest) if rules else None
        if match is None:
            out.append(items[i])
            i += 1
            continue
        end, right, count = match
        merged = replace_span(items, i, end, right, source=LEARNED_SOURCE, count=count)
        out.append(merged)
        replacements.append(Replacement(i, end, merged["original"], right, 100.0, LEARNED_SOURCE))
        i = end
    return CorrectionResult(out, tuple(replacements))
