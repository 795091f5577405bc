"""What the service's library functions raise for a request it will not serve."""

from __future__ import annotations


class Refusal(Exception):
    """A request answered with ``status`` and one line for the person who sent it.

    The library (uploads, the review over the network) decides the status, because it
    knows why: 409 for a lost lease, 413 for an oversized upload. The API only turns
    it into ``{"error": message}``. The message names no patient, file or field value:
    it may be audited.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
