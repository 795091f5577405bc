"""The archive's index in the job store, and the blind index of names.

The store keeps, per archived item: job id, kind, path, SHA-256 and size of the
plaintext and of the age file, dates. Never a name, never text. To find a patient's
or a matter's letters it keeps *blind terms*: HMAC-SHA256, keyed with the secret in
``keys/index.key``, of each word of the normalised name (accents, case, punctuation,
word order and titles such as "Mme", "Dr", "Maître" do not matter). Without the key
the terms say nothing; with it, a search for "Lefèvre-Dupré" finds "Mme Hélène
LEFEVRE DUPRE". What they do reveal: that two jobs share a name word.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..store import ArchiveEntry, JobStore
from .crypto import Digest, Sealed

NAME_KINDS = ("patient", "matter")
#: Field names (sidecar or approved letter fields) that name a patient or a matter.
NAME_FIELDS: Mapping[str, tuple[str, ...]] = {
    "patient": ("patient", "patient_name", "nom_du_patient", "nom_patient", "patiente"),
    "matter": ("matter", "matter_name", "dossier", "affaire", "reference_dossier"),
}
TITLES = frozenset(
    (
        *("m", "mme", "mlle", "madame", "monsieur", "mademoiselle", "me", "maitre"),
        *("dr", "docteur", "pr", "prof", "professeur"),
        *("mr", "mrs", "ms", "miss", "mx", "sir"),
    )
)
WORD = re.compile(r"[^\W_]+")


def name_words(name: str) -> list[str]:
    """Normalised words of a name: no accents, case-folded, titles dropped, sorted."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return sorted({word for word in WORD.findall(text) if word not in TITLES})


def blind_terms(secret: bytes, kind: str, name: str) -> set[str]:
    return {
        hmac.new(secret, f"{kind}\x00{word}".encode(), hashlib.sha256).hexdigest()
        for word in name_words(name)
    }


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def names_in(folder: Path) -> dict[str, list[str]]:
    """Patient and matter names the sender or the secretary gave for this job."""
    sources = [_load_json(folder / "sidecar.json")]
    approved = _load_json(folder / "approved.json")
    sources.append(approved.get("fields") if isinstance(approved.get("fields"), dict) else {})
    found: dict[str, list[str]] = {kind: [] for kind in NAME_KINDS}
    for source in sources:
        for kind, keys in NAME_FIELDS.items():
            found[kind] += [str(source[k]) for k in keys if isinstance(source.get(k), str)]
    return found


def job_terms(secret: bytes, names: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    return {
        (kind, term)
        for kind, values in names.items()
        for name in values
        for term in blind_terms(secret, kind, name)
    }


@dataclass(frozen=True)
class IndexedItem:
    """One row of ``archive_items``: where an item is, and what it must hash to."""

    job_id: str
    kind: str
    path: str  # relative to the archive folder
    plain: Digest
    cipher: Digest
    archived_at: float
    purged_at: float | None

    @classmethod
    def from_entry(cls, entry: ArchiveEntry) -> IndexedItem:
        return cls(
            job_id=entry.job_id,
            kind=entry.kind,
            path=entry.path,
            plain=Digest(entry.sha256, entry.size_bytes),
            cipher=Digest(entry.age_sha256, entry.age_size),
            archived_at=entry.archived_at,
            purged_at=entry.purged_at,
        )


def index_entry(
    job_id: str, kind: str, path: str, sealed: Sealed, archived_at: float
) -> ArchiveEntry:
    """The index row of an item just sealed."""
    return ArchiveEntry(
        job_id=job_id,
        kind=kind,
        path=path,
        sha256=sealed.plain.sha256,
        size_bytes=sealed.plain.size,
        age_sha256=sealed.cipher.sha256,
        age_size=sealed.cipher.size,
        archived_at=archived_at,
    )


def items(
    store: JobStore, *, job_id: str | None = None, include_purged: bool = True
) -> list[IndexedItem]:
    entries = store.archive_entries(job_id=job_id, include_purged=include_purged)
    return [IndexedItem.from_entry(entry) for entry in entries]


def search(store: JobStore, secret: bytes, kind: str, name: str) -> set[str]:
    """Jobs whose ``kind`` name contains every word of ``name``."""
    return store.find_by_terms(kind, blind_terms(secret, kind, name))
