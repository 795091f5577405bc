"""Files every machine can reach: where the audio, the work files and the archive live.

In the embedded mode they are owner-only folders on the secretariat's machine; in
platform mode, objects in S3-compatible storage, so that any worker can take any
task and keeps only scratch copies while it runs. Both sit behind one small
interface (:class:`~transcribe.files.contract.FileStore`), so a stage says *what* it
stores under which key, never *where*. Every object sent to S3 is an age file
(:mod:`transcribe.files.sealing`): a leaked bucket holds no audio or text in clear.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .contract import FileStore, check_key, content_key
from .local import LocalFileStore, workspace_areas
from .sealing import WorkingKey, ensure_working_key

if TYPE_CHECKING:
    from ..config import Config

SCRATCH_DIR = "scratch"

__all__ = [
    "FileStore",
    "LocalFileStore",
    "WorkingKey",
    "check_key",
    "content_key",
    "ensure_working_key",
    "open_file_store",
]


def open_file_store(config: Config) -> FileStore:
    """The store ``[files]`` names: local folders when ``url`` is empty, else S3.

    boto3 is imported only in platform mode, so the embedded mode starts as fast as
    before. Scratch copies go under ``work/scratch/`` in either mode.
    """
    scratch = config.paths.work / SCRATCH_DIR
    if not config.files.url:
        return LocalFileStore(workspace_areas(config.paths.work, config.paths.archive), scratch)
    from .s3 import S3FileStore, S3Options

    options = S3Options.from_config(config.files)
    return S3FileStore(options, WorkingKey(config.paths.keys), scratch)
