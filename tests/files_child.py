"""A process the file-store tests kill in the middle of a put (``python -m tests.files_child``).

Killing a real process mid-write is the crash we care about: no fake store, no fake
server. ``put KIND ...`` stores a file (a FIFO the test feeds, then kills us while
we read it); ``multipart ...`` uploads in parts and kills itself with SIGKILL as
soon as the server has taken the first part, before the upload is completed.
S3 credentials come from the environment, as in production.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from transcribe.files import LocalFileStore, WorkingKey, workspace_areas
from transcribe.files.contract import FileStore
from transcribe.files.s3 import S3FileStore, S3Options


def build(spec: dict) -> FileStore:
    """The store a test describes in JSON (what ``describe`` in test_files writes)."""
    scratch = Path(spec["scratch"])
    if spec["kind"] == "local":
        return LocalFileStore(workspace_areas(Path(spec["work"]), Path(spec["archive"])), scratch)
    options = S3Options(
        bucket=spec["bucket"],
        prefix=spec["prefix"],
        endpoint_url=spec["endpoint_url"],
        max_attempts=1,
        multipart_threshold=spec.get("multipart", 64 << 20),
        multipart_chunksize=max(spec.get("multipart", 64 << 20), 5 << 20),
    )
    return S3FileStore(options, WorkingKey(Path(spec["keys"])), scratch)


def kill_after_first_part(store: S3FileStore) -> None:
    """Die, the hard way, once the server has stored one part of the upload."""
    upload_part = store.client.upload_part

    def and_die(**kwargs: object) -> object:
        answer = upload_part(**kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return answer

    store.client.upload_part = and_die


def main(argv: list[str]) -> None:
    mode, spec_json, key, source = argv
    store = build(json.loads(spec_json))
    if mode == "multipart":
        assert isinstance(store, S3FileStore)
        kill_after_first_part(store)
    print("ready", flush=True)
    store.put_file(key, Path(source))
    print("stored", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
