"""The secretary's review loop (issue 4).

Library (no terminal code): :class:`ReviewSession` (one job: cursor, doubtful-word
and sentence navigation, edits saved as made, fields, approve, query),
:func:`review_queue`, :func:`approve_job`, :func:`send_back`, :func:`back_to_review`,
settings from ``review-keys.toml``. The terminal UI lives in :mod:`transcribe.review.tui` and is
imported only by the ``review`` command.
"""

from __future__ import annotations

from .approval import (
    APPROVED_NAME,
    CORRECTIONS_NAME,
    QUERY_NAME,
    MissingFields,
    approve_job,
    back_to_review,
    parse_field_args,
    read_text_arg,
    reviewer_id,
    send_back,
)
from .i18n import Messages, is_french
from .queue import QueueEntry, review_queue
from .session import FieldRow, ReviewSession, count_doubtful, sentence_spans
from .settings import ACTIONS, SETTINGS_NAME, ReviewSettings, load_settings

__all__ = [
    "ACTIONS",
    "APPROVED_NAME",
    "CORRECTIONS_NAME",
    "QUERY_NAME",
    "SETTINGS_NAME",
    "FieldRow",
    "Messages",
    "MissingFields",
    "QueueEntry",
    "ReviewSession",
    "ReviewSettings",
    "approve_job",
    "back_to_review",
    "count_doubtful",
    "is_french",
    "load_settings",
    "parse_field_args",
    "read_text_arg",
    "review_queue",
    "reviewer_id",
    "send_back",
    "sentence_spans",
]
