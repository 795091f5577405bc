"""Read lexicon files: the shipped domain lists and the clients' own lists.

One plain-text format for everything (see README.md in this package) so a
secretary can maintain a client's list in any editor, and so the shipped lists
and client lists go through the same validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from transcribe.errors import ConfigError

DOMAINS = ("medical", "legal", "general")
LANGUAGES = ("fr", "en")
MIN_WEIGHT = 1
MAX_WEIGHT = 5
_DATA_PACKAGE = "transcribe.vocabulary.data"


@dataclass(frozen=True)
class LexiconEntry:
    """One line of a lexicon file, kept with its position for error messages."""

    text: str
    weight: int = 1
    category: str = ""


def parse_lexicon(text: str, *, origin: str = "<text>") -> list[LexiconEntry]:
    """Parse the lexicon format; a bad line is an error, not silently skipped.

    Silently dropping a malformed line would leave a client wondering why a term
    never shows up, so the message names the file and the line.
    """
    entries: list[LexiconEntry] = []
    category = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            category = line[1:-1].strip()
            continue
        entries.append(_parse_term_line(line, category, f"{origin}:{number}"))
    return entries


def _parse_term_line(line: str, category: str, where: str) -> LexiconEntry:
    term, sep, weight_text = line.partition("|")
    term = " ".join(term.split())
    if not term:
        raise ConfigError(f"{where}: empty term", hint="write one term per line")
    if not sep:
        return LexiconEntry(term, 1, category)
    try:
        weight = int(weight_text.strip())
    except ValueError:
        weight = 0
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise ConfigError(
            f"{where}: weight must be an integer {MIN_WEIGHT}-{MAX_WEIGHT}, "
            f"got {weight_text.strip()!r}",
            hint="use 'term | 3' or just 'term'",
        )
    return LexiconEntry(term, weight, category)


def read_lexicon_file(path: Path) -> list[LexiconEntry]:
    """Read a client or author list; missing or unreadable files are config errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"vocabulary file not found: {path}",
            hint="fix the path in the client configuration or create the file",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"vocabulary file is not UTF-8: {path}",
            hint="save it as UTF-8 text",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read vocabulary file {path}: {exc.strerror}") from None
    return parse_lexicon(text, origin=str(path))


def check_domain(domain: str, lang: str) -> None:
    """Reject unknown domains and languages early, before any model is loaded."""
    if domain not in DOMAINS:
        raise ConfigError(
            f"unknown vocabulary domain {domain!r}",
            hint=f"use one of: {', '.join(DOMAINS)}",
        )
    if lang not in LANGUAGES:
        raise ConfigError(
            f"unknown vocabulary language {lang!r}",
            hint=f"use one of: {', '.join(LANGUAGES)}",
        )


def shipped_lexicon(domain: str, lang: str) -> list[LexiconEntry]:
    """The lexicon shipped for a domain and language; 'general' has none."""
    check_domain(domain, lang)
    if domain == "general":
        return []
    name = f"{domain}-{lang}.txt"
    resource = resources.files(_DATA_PACKAGE).joinpath(name)
    return parse_lexicon(resource.read_text(encoding="utf-8"), origin=name)


def shipped_word_list(name: str) -> frozenset[str]:
    """A shipped plain word list (one word a line, '#' comments), casefolded."""
    resource = resources.files(_DATA_PACKAGE).joinpath(name)
    words = (line.strip() for line in resource.read_text(encoding="utf-8").splitlines())
    return frozenset(w.casefold() for w in words if w and not w.startswith("#"))
