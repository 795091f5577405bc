"""Retention: how long each kind of archived item is kept, per client; the purge.

``transcribe.toml``::

    [retention]
    audio_days = 30          # dictation audio, counted from archiving (default 30)
    documents_days = 3650    # letters and transcripts; leave out (or "keep") to keep

    [retention.cabinet-martin]   # a client's own periods override the defaults
    audio_days = 7

A purge deletes the expired age files, marks them purged in the index (the hashes
stay, as proof of what was held), drops the job's blind-index terms once its letter
is gone, and audits every removal.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import CONFIG_NAME, Config
from ..errors import ConfigError
from ..fsutil import fsync_dir
from ..store import JobStore
from .index import IndexedItem, items
from .lock import archive_lock

DAY_S = 86400.0
DEFAULT_AUDIO_DAYS = 30
KEEP = "keep"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days after archiving; None keeps forever."""

    audio_days: int | None = DEFAULT_AUDIO_DAYS
    documents_days: int | None = None

    def days_for(self, kind: str) -> int | None:
        return self.audio_days if kind == "audio" else self.documents_days


@dataclass(frozen=True)
class Retention:
    default: RetentionPolicy = field(default_factory=RetentionPolicy)
    clients: Mapping[str, RetentionPolicy] = field(default_factory=dict)

    def for_client(self, client: str) -> RetentionPolicy:
        return self.clients.get(client, self.default)


def _days(section: str, key: str, value: Any) -> int | None:
    if value == KEEP:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f'[{section}] {key} must be a number of days >= 0 or "keep"')
    return value


def _policy(section: str, raw: Mapping[str, Any], base: RetentionPolicy) -> RetentionPolicy:
    unknown = sorted(k for k in raw if k not in ("audio_days", "documents_days"))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in [{section}]")
    values = {
        key: _days(section, key, raw[key]) if key in raw else getattr(base, key)
        for key in ("audio_days", "documents_days")
    }
    return RetentionPolicy(**values)


def parse_retention(raw: Any) -> Retention:
    """Validate ``[retention]``: scalar keys are the defaults, tables are clients."""
    if not isinstance(raw, dict):
        raise ConfigError("[retention] must be a table")
    scalars = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    default = _policy("retention", scalars, RetentionPolicy())
    clients = {
        client: _policy(f"retention.{client}", table, default)
        for client, table in raw.items()
        if isinstance(table, dict)
    }
    return Retention(default=default, clients=clients)


def load_retention(config: Config) -> Retention:
    """``[retention]`` of the workspace's ``transcribe.toml`` (defaults when absent)."""
    path = config.paths.home / CONFIG_NAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_retention(raw.get("retention", {}))


@dataclass(frozen=True)
class Purged:
    job_id: str
    kind: str
    path: str  # relative to the archive folder
    archived_at: float
    days: int


def due(store: JobStore, retention: Retention, now: float) -> list[tuple[IndexedItem, str, int]]:
    """Items past their client's retention period: (item, client, days)."""
    found = []
    for item in items(store, include_purged=False):
        client = store.get(item.job_id).client
        days = retention.for_client(client).days_for(item.kind)
        if days is not None and item.archived_at + days * DAY_S <= now:
            found.append((item, client, days))
    return found


def purge(
    config: Config,
    store: JobStore,
    *,
    retention: Retention | None = None,
    now: float | None = None,
    dry_run: bool = False,
) -> list[Purged]:
    """Delete expired items; each removal is committed and audited on its own."""
    retention = retention or load_retention(config)
    now = time.time() if now is None else now
    with archive_lock(config, exclusive=not dry_run):
        return _purge(config, store, retention, now, dry_run)


def _purge(
    config: Config, store: JobStore, retention: Retention, now: float, dry_run: bool
) -> list[Purged]:
    done = []
    for item, _client, days in due(store, retention, now):
        done.append(Purged(item.job_id, item.kind, item.path, item.archived_at, days))
        if dry_run:
            continue
        _remove(config.paths.archive / item.path)
        store.purge_archive_item(
            item.job_id,
            item.kind,
            at=now,
            detail=f"{item.kind}: retention of {days} days",
            forget_names=item.kind == "letter",
        )
    return done


def _remove(path: Path) -> None:
    """Unlink first, then commit: a crash in between is finished by the next purge."""
    path.unlink(missing_ok=True)
    if path.parent.is_dir():
        fsync_dir(path.parent)
