"""One exception tree for the whole library.

Every error the library raises on purpose derives from :class:`TranscribeError`,
carries the process exit code the CLI should use, and a one-line message that tells
the operator what to do. The CLI has a single handler for the tree; anything else is
a bug and gets a traceback (with ``-v``).
"""

from __future__ import annotations


class TranscribeError(Exception):
    """Base of every expected failure: one line for the operator, one exit code."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(TranscribeError):
    """The workspace configuration or a command-line option is wrong."""

    exit_code = 2


class WorkspaceError(TranscribeError):
    """The workspace is missing, not initialised, or not writable."""

    exit_code = 3


class JobNotFound(TranscribeError):
    """No job with that id exists in the store."""

    exit_code = 4


class StateError(TranscribeError):
    """A job is not in a state that allows the requested step."""

    exit_code = 5


class StaleAttempt(StateError):
    """A run's result came after the job was handed to a newer run (its worker was
    taken for dead, the queue ran the job again): the job's attempt count moved on, so
    this result is dropped and nothing of it is written (fencing)."""


class InputRejected(TranscribeError):
    """A dropped file cannot be accepted; the job is quarantined with this reason."""

    exit_code = 6


class AudioError(InputRejected):
    """The audio cannot be decoded or breaks a size or duration cap."""


class ModelError(TranscribeError):
    """The Whisper model cannot be found, verified or loaded."""

    exit_code = 7


class ExternalToolError(TranscribeError):
    """An external program (LibreOffice, a player, age...) is missing or failed."""

    exit_code = 8


class RenderError(TranscribeError):
    """A document could not be rendered, converted or signed; the job is retryable."""

    exit_code = 9


class StoreError(TranscribeError):
    """The job store is locked, corrupt, or from a newer version of the program."""

    exit_code = 10


class StoreConflict(StoreError):
    """A write the store's constraints refuse: a second live job with the same content
    hash, a job id taken twice. Nothing was written."""


class ArchiveError(TranscribeError):
    """An archived item is missing, truncated, altered, or not openable with our key."""

    exit_code = 11


class AuditError(TranscribeError):
    """The audit log's hash chain is broken: an entry was edited, deleted or moved."""

    exit_code = 12


class FileStoreError(TranscribeError):
    """The file store (local folders or S3) refused a key or a payload, or is unreachable."""

    exit_code = 13


class FileMissing(FileStoreError):
    """No object under that key: never stored, or deleted (callers may treat it apart)."""


class ServiceError(TranscribeError):
    """The HTTPS service cannot be started, reached or trusted, or refused a request
    (wrong password, locked account, expired login, a job this account may not see)."""

    exit_code = 14


class AccountError(TranscribeError):
    """An account of the service cannot be added or changed as asked: unknown or
    taken name, unknown role or client, a password too short."""

    exit_code = 15


class AccountNotFound(AccountError):
    """No account with that name."""
