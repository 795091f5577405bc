"""Reading the archive back: list, decrypt one item, verify everything.

Every decryption is audited (who, which job, which item: never a name or a path
chosen by the operator, which could hold one). A search by patient or matter is
audited too, without the name searched for.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import x509
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from ..config import Config
from ..documents import verify_signed_pdf
from ..errors import ConfigError, JobNotFound
from ..fsutil import atomic_output, write_failure
from ..keys import ArchiveKeys, Identity
from ..store import JobStore
from .crypto import ArchiveError, cipher_problem, decrypt_to
from .index import IndexedItem, items, search
from .lock import archive_lock
from .write import KINDS

#: Letters bigger than this are only hashed by ``verify``, not signature-checked.
MAX_SIGNATURE_CHECK_BYTES = 256 * 1024 * 1024


def _stamp(value: float | None) -> str | None:
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds") if value else None


@dataclass(frozen=True)
class ArchivedJob:
    """What ``archive list`` shows: ids, client, dates, type, items. No names."""

    job_id: str
    client: str
    document_type: str | None
    created_at: float
    items: tuple[IndexedItem, ...]

    @property
    def archived_at(self) -> float:
        return min(item.archived_at for item in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "client": self.client,
            "document_type": self.document_type,
            "created_at": _stamp(self.created_at),
            "archived_at": _stamp(self.archived_at),
            "items": {
                item.kind: {
                    "path": item.path,
                    "sha256": item.plain.sha256,
                    "size": item.plain.size,
                    "purged_at": _stamp(item.purged_at),
                }
                for item in self.items
            },
        }


def list_archive(
    config: Config,
    store: JobStore,
    *,
    client: str | None = None,
    patient: str | None = None,
    matter: str | None = None,
) -> list[ArchivedJob]:
    """Archived jobs, oldest first; ``patient``/``matter`` search the blind index."""
    wanted: set[str] | None = None
    for kind, name in (("patient", patient), ("matter", matter)):
        if name is None:
            continue
        if not name.strip():
            raise ConfigError(f"empty {kind} name to search for")
        found = search(store, ArchiveKeys(config.paths.keys).index_secret(), kind, name)
        wanted = found if wanted is None else wanted & found
        store.record("archive-search", None, f"by {kind}: {len(found)} job(s)")
    grouped: dict[str, list[IndexedItem]] = {}
    for item in items(store):
        grouped.setdefault(item.job_id, []).append(item)
    result = []
    for job_id, found_items in grouped.items():
        if wanted is not None and job_id not in wanted:
            continue
        job = store.get(job_id)
        if client and job.client != client:
            continue
        order = sorted(found_items, key=lambda i: KINDS.index(i.kind) if i.kind in KINDS else 9)
        result.append(
            ArchivedJob(job.id, job.client, job.document_type, job.created_at, tuple(order))
        )
    return sorted(result, key=lambda j: (j.created_at, j.job_id))


def _item(store: JobStore, job_id: str, kind: str) -> IndexedItem:
    store.get(job_id)  # JobNotFound for an unknown id
    for item in items(store, job_id=job_id):
        if item.kind == kind:
            if item.purged_at is not None:
                raise ArchiveError(
                    f"the {kind} of job {job_id} was purged on {_stamp(item.purged_at)} "
                    "(retention period over)"
                )
            return item
    raise JobNotFound(f"job {job_id} has no archived {kind}", hint="see `archive list`")


def _check_cipher(config: Config, item: IndexedItem) -> Path:
    path = config.paths.archive / item.path
    problem = cipher_problem(path, item.cipher)
    if problem:
        raise ArchiveError(f"archive file {_shown(config, path)} is {problem}")
    return path


def _shown(config: Config, path: Path) -> str:
    try:
        return str(path.relative_to(config.paths.home))
    except ValueError:
        return str(path)


def get_item(
    config: Config,
    store: JobStore,
    job_id: str,
    out: Path,
    *,
    kind: str = "letter",
    force: bool = False,
) -> IndexedItem:
    """Decrypt one item to ``out`` (0600): complete and verified, or nothing written."""
    if kind not in KINDS:
        raise ConfigError(f"unknown item {kind!r}: one of {', '.join(KINDS)}")
    item = _item(store, job_id, kind)
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists", hint="choose another name or use --force")
    try:
        path = _check_cipher(config, item)
        identities = ArchiveKeys(config.paths.keys).identities()
        _decrypt_file(config, path, identities, item, out)
    except ArchiveError as exc:
        store.record("archive-export-refused", job_id, f"{kind}: {exc.message[:160]}")
        raise
    try:
        store.record("archive-export", job_id, f"{kind} decrypted to a file")
    except BaseException:
        out.unlink(missing_ok=True)  # no decryption without its audit entry
        raise
    return item


def _decrypt_file(
    config: Config, path: Path, identities: list[Identity], item: IndexedItem, out: Path
) -> None:
    try:
        with atomic_output(out) as staged:
            digest = decrypt_to(path, identities, staged.file)
            if digest != item.plain:
                raise ArchiveError(
                    f"archive file {_shown(config, path)} decrypts, but not to the archived content"
                )
    except OSError as exc:  # the output's disk (full, read-only): nothing is left there
        raise write_failure(exc, out.name, out.parent) from exc


@dataclass(frozen=True)
class Problem:
    path: str  # relative to the workspace
    job_id: str | None
    kind: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class ArchiveReport:
    checked: int
    purged: int
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_archive(config: Config, store: JobStore) -> ArchiveReport:
    """Every item: present, ciphertext as indexed, decrypts, plaintext as indexed, and
    every letter's signature intact, valid, covering the whole file (and trusted when
    a trust root is configured)."""
    identities = ArchiveKeys(config.paths.keys).identities()
    roots = _trust_roots(config)
    with archive_lock(config, exclusive=False):
        indexed = items(store)
        problems = _problems(config, indexed, identities, roots)
    notes = _strays(config, {item.path for item in indexed})
    purged = sum(1 for item in indexed if item.purged_at is not None)
    report = ArchiveReport(len(indexed) - purged, purged, tuple(problems), notes)
    store.record(
        "archive-verify", None, f"{report.checked} item(s) decrypted, {len(problems)} problem(s)"
    )
    return report


def _problems(
    config: Config, indexed: list[IndexedItem], identities: list[Identity], roots: tuple[Path, ...]
) -> list[Problem]:
    problems = []
    for item in indexed:
        if item.purged_at is not None:
            continue
        message = _verify_item(config, item, identities, roots)
        if message:
            path = _shown(config, config.paths.archive / item.path)
            problems.append(Problem(path, item.job_id, item.kind, message))
    return problems


def _verify_item(
    config: Config, item: IndexedItem, identities: list[Identity], roots: tuple[Path, ...]
) -> str | None:
    path = config.paths.archive / item.path
    problem = cipher_problem(path, item.cipher)
    if problem:
        return problem
    check_pdf = item.kind == "letter" and item.plain.size <= MAX_SIGNATURE_CHECK_BYTES
    sink = io.BytesIO() if check_pdf else None
    try:
        digest = decrypt_to(path, identities, sink)
    except ArchiveError as exc:
        return exc.message.split(": ", 1)[-1]
    if digest != item.plain:
        return "decrypts, but not to the archived content (index mismatch)"
    if sink is not None:
        pdf = sink.getvalue()
        trusted = roots or _embedded_roots(pdf)
        report = verify_signed_pdf(pdf, trust_roots=trusted, require_trusted=bool(roots))
        if not report.ok:
            return f"signature check failed: {report.reason}"
    return None


def _embedded_roots(pdf: bytes) -> list[x509.Certificate]:
    """With no trust root configured, the chain the signature carries is checked for
    consistency (as the letter stage does), which also keeps pyHanko's path-building
    warnings out of the report. Trust itself is then not asserted."""
    try:
        signatures = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
        certificates = signatures[-1].signed_data["certificates"] if signatures else []
        found = [c.chosen for c in certificates if c.name == "certificate"]
    except (PdfError, ValueError, KeyError, TypeError, OSError):  # reported by verify_signed_pdf
        return []
    return [c for c in found if c.self_signed in ("maybe", "yes")]


def _trust_roots(config: Config) -> tuple[Path, ...]:
    signing = getattr(config, "signing", None)
    root = getattr(signing, "trust_root", "") if signing is not None else ""
    path = config.paths.home / root if root else None
    return (path,) if path is not None and path.is_file() else ()


def _strays(config: Config, known: set[str]) -> tuple[str, ...]:
    """Files in archive/ that the index does not know (left by a crash, or foreign)."""
    root = config.paths.archive
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.relative_to(root).as_posix() not in known:
            found.append(f"{_shown(config, path)}: not in the archive index")
    return tuple(found)
