"""From approved dictation to a signed PDF/A on the client's letterhead.

Public API (everything else in this package is an implementation detail):

* :func:`render_pdf` — fill a DOCX template, convert to PDF/A-2b with LibreOffice,
  sign (PAdES B-B, or B-T with a time-stamping URL), verify, write atomically.
* :func:`warm_converter` — one LibreOffice kept warm for many documents.
* :func:`check_templates` / :func:`templates_json` — fields of each template
  (``templates check``); :func:`template_fields` for one file.
* :func:`make_test_certificate` — a clearly labelled TEST signing certificate.
* :func:`verify_signed_pdf` — pyHanko's verdict on a signed PDF.
"""

from __future__ import annotations

from transcribe.documents.fields import (
    TemplateFields,
    check_templates,
    template_fields,
    templates_json,
)
from transcribe.documents.libreoffice import Converter, OneShotConverter, WarmConverter
from transcribe.documents.options import (
    DEFAULT_BODY_FIELDS,
    DocumentMetadata,
    RenderOptions,
    RenderResult,
    SigningOptions,
)
from transcribe.documents.placeholders import field_key
from transcribe.documents.render import render_pdf
from transcribe.documents.signing import (
    TEST_LABEL,
    SignatureReport,
    TestCertificate,
    make_test_certificate,
    verify_signed_pdf,
)


def warm_converter(
    options: RenderOptions | None = None, *, python: str | None = None
) -> WarmConverter:
    """A context manager keeping one LibreOffice running: ``with warm_converter() as c:
    render_pdf(..., converter=c)`` for each document of a batch."""
    options = options or RenderOptions()
    return WarmConverter(
        soffice=options.soffice,
        python=python,
        timeout_s=options.timeout_s,
        scratch_dir=options.work_dir,  # its profile and LibreOffice's temporary files
    )


__all__ = [
    "DEFAULT_BODY_FIELDS",
    "TEST_LABEL",
    "Converter",
    "DocumentMetadata",
    "OneShotConverter",
    "RenderOptions",
    "RenderResult",
    "SignatureReport",
    "SigningOptions",
    "TemplateFields",
    "TestCertificate",
    "WarmConverter",
    "check_templates",
    "field_key",
    "make_test_certificate",
    "render_pdf",
    "template_fields",
    "templates_json",
    "verify_signed_pdf",
    "warm_converter",
]
