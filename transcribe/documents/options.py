"""Explicit, validated options and results for rendering and signing.

Everything the document stage needs is passed in one of these frozen objects, so a
render is a pure function of its inputs (no global settings) and a retried job
renders exactly the same way. Secrets never live here: :class:`SigningOptions` only
says *where* the PKCS#12 passphrase comes from (an environment variable, an
owner-only file, or a prompt callback), never the passphrase itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from transcribe.errors import ConfigError

#: Field names (after :func:`transcribe.documents.fields.field_key`) that receive the
#: dictated text. The first one a template uses is its body.
DEFAULT_BODY_FIELDS: tuple[str, ...] = (
    "body",
    "texte",
    "text",
    "corps",
    "corps_du_texte",
    "dictee",
)


@dataclass(frozen=True)
class RenderOptions:
    """How a DOCX template becomes a PDF.

    ``timeout_s`` bounds one LibreOffice conversion: a hung office suite must turn
    into a clear, retryable error instead of a stuck job. ``work_dir`` is where the
    plaintext DOCX/PDF intermediates live for the few seconds of a render (a private
    temporary folder inside it, removed afterwards); point it at the workspace so
    health data never lands on a shared ``/tmp``.
    """

    pdfa: bool = True
    timeout_s: float = 120.0
    body_fields: tuple[str, ...] = DEFAULT_BODY_FIELDS
    soffice: str | None = None
    work_dir: Path | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigError(f"render timeout must be positive, got {self.timeout_s}")
        if not self.body_fields:
            raise ConfigError("at least one body field name is needed")


@dataclass(frozen=True)
class SigningOptions:
    """Which certificate signs, how its passphrase is obtained, and how to verify.

    Passphrase sources are tried in order: ``passphrase_env`` (the *name* of an
    environment variable), ``passphrase_file`` (must be readable by its owner only),
    ``passphrase_prompt`` (a callback, e.g. a terminal prompt in the CLI). None of
    them configured means the PKCS#12 is not encrypted. ``timestamp_url`` switches
    the signature from PAdES B-B to B-T. ``trust_roots`` are PEM/DER certificates
    the post-signing check trusts explicitly (the TEST root in tests and demos).
    """

    pkcs12: Path
    passphrase_env: str | None = None
    passphrase_file: Path | None = None
    passphrase_prompt: Callable[[str], str] | None = field(default=None, repr=False, compare=False)
    timestamp_url: str | None = None
    timestamp_timeout_s: float = 15.0
    reason: str | None = None
    location: str | None = None
    contact: str | None = None
    field_name: str = "Signature"
    visible_stamp: bool = False
    stamp_page: int = -1
    stamp_box: tuple[int, int, int, int] = (340, 40, 560, 100)
    stamp_font: Path | None = None
    trust_roots: tuple[Path, ...] = ()
    require_trusted: bool = False

    def __post_init__(self) -> None:
        if self.timestamp_url is not None and not self.timestamp_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(f"timestamp URL must be http(s): {self.timestamp_url!r}")
        x1, y1, x2, y2 = self.stamp_box
        if x2 <= x1 or y2 <= y1:
            raise ConfigError(f"signature stamp box is empty: {self.stamp_box}")
        if self.require_trusted and not self.trust_roots:
            raise ConfigError("require_trusted needs at least one trust root")

    @property
    def pades_level(self) -> str:
        """B-T when a time-stamping authority vouches for the signing time."""
        return "B-T" if self.timestamp_url else "B-B"


@dataclass(frozen=True)
class DocumentMetadata:
    """What the PDF says about itself: shown by viewers, indexed by archives.

    ``language`` is a BCP 47 tag (``fr-FR``, ``en-GB``); it sets the document
    language (hyphenation, screen readers, PDF ``/Lang``) and the format of the
    automatic ``date`` field. ``job_id`` ties the PDF back to the job and audit log.
    """

    title: str
    author: str
    language: str = "fr-FR"
    job_id: str | None = None
    subject: str | None = None
    keywords: tuple[str, ...] = ()
    date: dt.date | None = None

    def __post_init__(self) -> None:
        if not self.title.strip():
            raise ConfigError("document title must not be empty")
        if not self.language or not self.language.replace("-", "").isalnum():
            raise ConfigError(f"invalid document language tag: {self.language!r}")


@dataclass(frozen=True)
class RenderResult:
    """What the document stage produced, for the job store and the audit log."""

    path: Path
    sha256: str
    pages: int
    pdfa: bool
    signed: bool
    pades_level: str | None
    signer: str | None
    body_field: str
    fields: tuple[str, ...]
    unknown_fields: tuple[str, ...]
    converter: str
    timings: Mapping[str, float] = field(default_factory=dict)
