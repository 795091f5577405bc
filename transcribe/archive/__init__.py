"""The encrypted archive: age files that open for decades with the standard tool.

Public API (the rest of the package is implementation):

* :func:`archive_job` — rendered -> archived: signed PDF, audio and transcript bundle
  age-encrypted into ``archive/<client>/<yyyy>/<mm>/``, indexed, then the plaintext
  working files removed. Idempotent; :func:`archive_pending` for recovery;
  :func:`archive_or_fail` for the pipeline (a fault fails the job, retryable).
* :func:`list_archive`, :func:`get_item`, :func:`verify_archive` — read back.
* :func:`purge` with :func:`load_retention` / :func:`parse_retention` — retention.
* :func:`rotate_keys` — re-encrypt everything to a new archive key.

Keys live in ``keys/`` (see :mod:`transcribe.keys`); the audit trail is the job
store's ``events`` table (see :mod:`transcribe.store.audit`).
"""

from __future__ import annotations

from .crypto import ArchiveError
from .read import ArchivedJob, ArchiveReport, Problem, get_item, list_archive, verify_archive
from .retention import (
    Purged,
    Retention,
    RetentionPolicy,
    load_retention,
    parse_retention,
    purge,
)
from .rotate import RotationResult, rotate_keys
from .write import KINDS, archive_job, archive_or_fail, archive_pending, remove_plaintext

__all__ = [
    "KINDS",
    "ArchiveError",
    "ArchiveReport",
    "ArchivedJob",
    "Problem",
    "Purged",
    "Retention",
    "RetentionPolicy",
    "RotationResult",
    "archive_job",
    "archive_or_fail",
    "archive_pending",
    "get_item",
    "list_archive",
    "load_retention",
    "parse_retention",
    "purge",
    "remove_plaintext",
    "rotate_keys",
    "verify_archive",
]
