"""One lock for everything that rewrites the archive (archiving, purge, key rotation).

An ``flock`` on ``work/.archive.lock``: writers take it exclusively, readers that
check files against the index (``verify``) take it shared, so a rotation never runs
under an archiving job or a verification, and the lock disappears with a dead process.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Config
from ..errors import StoreError

LOCK_NAME = ".archive.lock"


@contextmanager
def archive_lock(
    config: Config, *, exclusive: bool = True, timeout_s: float = 120.0
) -> Iterator[None]:
    """Wait up to ``timeout_s`` for the archive, then give up with a clear error."""
    config.paths.work.mkdir(parents=True, exist_ok=True)
    fd = os.open(config.paths.work / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(
                        "the archive is busy (a key rotation or another archiving run)",
                        hint="try again when it has finished",
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)
