"""Finish the PDF's self-description with pypdf, before it is signed.

Title, author, subject and keywords were set on the DOCX, so LibreOffice wrote them
into both the Info dictionary and the XMP packet (PDF/A wants them equal). What is
left is done here, on the unsigned PDF (any change after signing would break the
signature): the job id as a custom Info entry (custom entries have no XMP
counterpart to keep in step), the catalog ``/Lang``, and a check that LibreOffice
really produced PDF/A-2b, since an old LibreOffice silently ignores the option.
"""

from __future__ import annotations

import io
import re

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError
from pypdf.generic import NameObject, TextStringObject

from transcribe.documents.options import DocumentMetadata
from transcribe.errors import RenderError

JOB_ID_KEY = "/TranscribeJobId"
_PDFA_PART = re.compile(rb"pdfaid:part(?:>|=\")\s*2")
_PDFA_CONFORMANCE = re.compile(rb"pdfaid:conformance(?:>|=\")\s*B", re.IGNORECASE)


def is_pdfa2b(pdf: bytes) -> bool:
    """LibreOffice writes an uncompressed XMP packet; its PDF/A id is enough here
    (full conformance is veraPDF's job, not ours)."""
    return bool(_PDFA_PART.search(pdf) and _PDFA_CONFORMANCE.search(pdf))


def finish_pdf(
    pdf: bytes, metadata: DocumentMetadata, *, pdfa: bool, producer: str | None = None
) -> tuple[bytes, int]:
    """Add the job id and language; return the new bytes and the page count.

    ``producer`` pre-sets the Info ``/Producer`` to what the signer will write in
    the XMP packet: pyHanko rewrites XMP with its own name but only *appends* it to
    an Info producer that lacks it, and PDF/A wants the two to be equal.
    """
    if pdfa and not is_pdfa2b(pdf):
        raise RenderError("LibreOffice did not produce PDF/A-2b", hint="LibreOffice 7.4+ needed")
    try:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf), strict=False))
    except PdfReadError as exc:
        raise RenderError(f"converted PDF cannot be read: {exc}") from exc
    if metadata.job_id:
        writer.add_metadata({JOB_ID_KEY: metadata.job_id})
    if producer:
        writer.add_metadata({"/Producer": producer})
    root = writer.root_object
    if str(root.get("/Lang", "")) != metadata.language:
        root[NameObject("/Lang")] = TextStringObject(metadata.language)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue(), len(writer.pages)


def read_job_id(pdf: bytes) -> str | None:
    """The job a (signed or not) PDF belongs to, for ``archive verify``."""
    info = PdfReader(io.BytesIO(pdf), strict=False).metadata or {}
    value = info.get(JOB_ID_KEY)
    return None if value is None else str(value)
