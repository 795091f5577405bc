"""The hash chain that makes the audit log (the ``events`` table) tamper-evident.

Each entry stores ``prev_hash`` (the hash of the entry before it, or :data:`GENESIS`
for the first) and ``hash``: SHA-256 of a canonical JSON serialisation of the
entry, its sequence number and ``prev_hash`` included. Editing an entry changes its
hash; deleting, inserting or moving one breaks the link of the entry after it; so
:func:`transcribe.store.audit.verify_audit` can name the first bad entry.

This module is imported by the job store, so it imports nothing from the package.
:func:`chain_event` and :func:`seal_unchained` work on the open SQLite connection,
inside the caller's transaction, so an entry and its chain link are committed
together with the state change they record; a backend with concurrent writers
computes the link with :func:`entry_hash` from a locked chain head instead.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

#: ``prev_hash`` of the first entry of every audit log.
GENESIS = "0" * 64
#: The columns covered by an entry's hash, in this order.
CHAINED_COLUMNS = ("seq", "at", "actor", "action", "job_id", "from_state", "to_state", "detail")


def canonical(entry: Mapping[str, Any] | Sequence[Any], prev_hash: str) -> bytes:
    """One unambiguous byte string per entry: a JSON array, fixed order, no spacing.

    Floats keep their exact ``repr`` (JSON round-trips doubles), so the hash computed
    when the entry is written is the one recomputed when it is read back.
    """
    if isinstance(entry, Mapping):
        values = [entry[name] for name in CHAINED_COLUMNS]
    else:
        values = list(entry)
    return json.dumps(
        [*values, prev_hash], ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def entry_hash(entry: Mapping[str, Any] | Sequence[Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical(entry, prev_hash)).hexdigest()


def _select(where: str) -> str:
    return f"SELECT {', '.join(CHAINED_COLUMNS)}, prev_hash, hash FROM events {where}"


def chain_event(db: sqlite3.Connection, seq: int) -> None:
    """Link the just-inserted entry ``seq`` to the one before it (same transaction)."""
    before = db.execute("SELECT hash FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 1", (seq,))
    row = before.fetchone()
    prev_hash = GENESIS if row is None else (row[0] or "")
    entry = db.execute(_select("WHERE seq = ?"), (seq,)).fetchone()
    db.execute(
        "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?",
        (prev_hash, entry_hash(tuple(entry)[: len(CHAINED_COLUMNS)], prev_hash), seq),
    )


def seal_unchained(db: sqlite3.Connection) -> int:
    """Chain the entries written before the chain existed (run once, at migration).

    Only when no entry carries a hash yet: once the chain has started, an entry
    without a hash is a tampered one, and must be reported, not silently sealed.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    if "hash" not in columns:
        return 0  # an older schema, before the chain's migration
    if db.execute("SELECT 1 FROM events WHERE hash IS NOT NULL LIMIT 1").fetchone():
        return 0
    prev_hash = GENESIS
    rows = db.execute(_select("ORDER BY seq")).fetchall()
    for row in rows:
        values = tuple(row)[: len(CHAINED_COLUMNS)]
        digest = entry_hash(values, prev_hash)
        db.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?",
            (prev_hash, digest, values[0]),
        )
        prev_hash = digest
    return len(rows)
