"""The audit trail: verify the hash chain of the job store's ``events`` table, export it.

Every state change, view, export, decryption, deletion and key rotation is an entry
(time, actor, action, job id, states, a detail without personal data), chained to
the one before by SHA-256 (see :mod:`transcribe.store.auditchain`). :func:`verify_audit`
recomputes the chain and names the first bad entry: altered, deleted, inserted or
moved. It also checks that the last entries were not cut off (each backend remembers
the highest sequence number it handed out) and that every job's state is the one its
audit trail ends in.

Limit, by design of any unanchored chain: someone able to rewrite the whole database
can recompute the whole chain. Keep the head hash (``audit verify`` prints it; an
``audit export`` copy kept elsewhere) to detect that too.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AuditError
from ..fsutil import atomic_write_text
from .auditchain import GENESIS, entry_hash
from .contract import JobStore


def operator_id() -> str:
    """Who acts, as the audit trail shows it: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class AuditReport:
    entries: int
    head: str
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def raise_if_broken(self) -> None:
        if self.problem is not None:
            raise AuditError(
                self.problem, hint="restore the job store from a backup and investigate"
            )


def _link_problem(row: dict[str, Any], expected_seq: int, expected_prev: str) -> str | None:
    seq = row["seq"]
    if seq > expected_seq and row["prev_hash"] != expected_prev:
        missing = f"#{expected_seq}" if seq == expected_seq + 1 else f"#{expected_seq}-#{seq - 1}"
        follows = f"entry #{seq} no longer follows #{expected_seq - 1}"
        return f"audit entry {missing} was deleted ({follows})"
    if row["hash"] is None or row["prev_hash"] is None:
        return f"audit entry #{seq} has no hash (the chain was tampered with)"
    if entry_hash(row, row["prev_hash"]) != row["hash"]:
        return f"audit entry #{seq} was altered or moved (its content no longer matches its hash)"
    if row["prev_hash"] != expected_prev:
        return f"audit entry #{seq} is out of place (it does not follow entry #{expected_seq - 1})"
    return None


def verify_audit(store: JobStore) -> AuditReport:
    """Recompute the chain from the genesis value; stop at the first bad entry."""
    count = 0
    expected_prev, expected_seq = GENESIS, 1
    bad: tuple[int, str] | None = None
    for row in store.iter_events():
        count += 1
        problem = None if bad else _link_problem(row, expected_seq, expected_prev)
        if problem:
            bad = (row["seq"], problem)
        elif not bad:
            expected_prev, expected_seq = row["hash"], row["seq"] + 1
    if bad:
        return AuditReport(count, expected_prev, *bad)
    issued = store.audit_issued()
    if issued is not None and issued >= expected_seq:
        last = expected_seq - 1
        problem = f"audit entries after #{last} were deleted (up to #{issued} were written)"
        return AuditReport(count, expected_prev, last + 1, problem)
    mismatch = _state_mismatch(store)
    if mismatch:
        return AuditReport(count, expected_prev, None, mismatch)
    return AuditReport(count, expected_prev)


def _state_mismatch(store: JobStore) -> str | None:
    """A job whose state is not where its audited state changes lead."""
    for job_id, state, audited in store.audited_states():
        if audited is not None and state != audited:
            return f"job {job_id} is {state} but its audit trail ends in {audited}"
    return None


def export_audit(store: JobStore, out: Path) -> int:
    """Write the audit log as JSON lines (one entry per line, hashes included)."""
    rows = store.events()
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=True) for row in rows]
    atomic_write_text(out, "".join(line + "\n" for line in lines), mode=0o600)
    store.record("audit-export", None, f"{len(rows)} entries exported")
    return len(rows)
