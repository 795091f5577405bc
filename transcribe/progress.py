"""How the library tells the outside world what it is doing, without drawing.

The library calls a :class:`Reporter`; the CLI passes one that prints with Rich,
tests pass one that records, and the default does nothing.
"""

from __future__ import annotations

from typing import Protocol

from .store import Job


class Reporter(Protocol):
    def job(self, job: Job, message: str) -> None:
        """Something happened to a job (taken in, quarantined, transcribed...)."""

    def note(self, message: str) -> None:
        """A workspace-level message (start-up sweep, waiting for files...)."""


class NullReporter:
    def job(self, job: Job, message: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass
