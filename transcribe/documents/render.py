"""Approved text to signed PDF/A: the document stage as one function.

fill DOCX -> LibreOffice PDF/A-2b -> metadata (pypdf) -> PAdES signature (pyHanko)
-> verification -> atomic write. Intermediates live in a private temporary folder
that disappears with the call; the output appears complete and verified or not at
all, so a crash or a failed check never leaves a half-written or unsigned file
where the archive step would pick it up.

Errors: :class:`~transcribe.errors.RenderError` for the document (bad template,
missing field, failed signature check: retryable once fixed),
:class:`~transcribe.errors.ExternalToolError` when LibreOffice is missing or hangs,
:class:`~transcribe.errors.ConfigError` for certificate and passphrase problems,
:class:`~transcribe.errors.WorkspaceError` when the disk is full (or read-only) under
the scratch folder or the output: nothing is left behind in either case.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from asn1crypto import x509

from transcribe.documents.fill import fill_template
from transcribe.documents.libreoffice import Converter, OneShotConverter
from transcribe.documents.options import (
    DocumentMetadata,
    RenderOptions,
    RenderResult,
    SigningOptions,
)
from transcribe.documents.pdfmeta import finish_pdf
from transcribe.documents.signing import (
    SIGNING_PRODUCER,
    load_certificates,
    load_signer,
    sign_pdf_bytes,
    signer_name,
    verify_signed_pdf,
)
from transcribe.errors import ConfigError, RenderError
from transcribe.fsutil import atomic_write_bytes, temp_prefix, write_failure

log = logging.getLogger(__name__)


class _Stopwatch:
    """Per-stage timings, for the benchmark and the job log."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - started, 4)


def render_pdf(
    template: Path,
    text: str,
    fields: Mapping[str, str],
    out: Path,
    *,
    options: RenderOptions,
    signing: SigningOptions | None,
    metadata: DocumentMetadata,
    converter: Converter | None = None,
) -> RenderResult:
    """Render ``template`` with ``text`` as body and ``fields``, write ``out``.

    ``converter`` is a warm LibreOffice for batches (see
    :func:`~transcribe.documents.warm_converter`); without one, a one-shot
    LibreOffice is started for this document.
    """
    if not template.is_file():
        raise ConfigError(f"template not found: {template}")
    clock = _Stopwatch()
    signer = load_signer(signing) if signing is not None else None
    converter = converter or OneShotConverter(soffice=options.soffice, timeout_s=options.timeout_s)
    if options.work_dir is not None:
        options.work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        scratch_name = temp_prefix() + "render-"  # swept by recovery if we are killed
        with tempfile.TemporaryDirectory(prefix=scratch_name, dir=options.work_dir) as scratch:
            with clock.stage("fill"):
                filled = fill_template(
                    template.read_bytes(), text, fields, metadata=metadata, options=options
                )
                docx = Path(scratch) / "document.docx"
                docx.write_bytes(filled.docx)
            with clock.stage("convert"):
                converter.convert(docx, Path(scratch) / "document.pdf", pdfa=options.pdfa)
            with clock.stage("metadata"):
                pdf, pages = finish_pdf(
                    (Path(scratch) / "document.pdf").read_bytes(),
                    metadata,
                    pdfa=options.pdfa,
                    producer=SIGNING_PRODUCER if signing is not None else None,
                )
            if signing is not None and signer is not None:
                with clock.stage("sign"):
                    pdf = sign_pdf_bytes(pdf, signing, signer=signer)
                if options.verify:
                    with clock.stage("verify"):
                        _verify(pdf, signing, _bundled_roots(signer))
        atomic_write_bytes(out, pdf, mode=0o600)
    except OSError as exc:  # disk full, quota, read-only: in the scratch or for the letter
        raise write_failure(exc, "the letter", out.parent) from exc
    # the job, not the file: a caller may name its letter after the patient
    done = f"job {metadata.job_id}: letter" if metadata.job_id else "a document"
    log.info("%s rendered (%d pages) in %s", done, pages, clock.timings)
    return RenderResult(
        path=out,
        sha256=hashlib.sha256(pdf).hexdigest(),
        pages=pages,
        pdfa=options.pdfa,
        signed=signing is not None,
        pades_level=signing.pades_level if signing else None,
        signer=signer_name(signer) if signer else None,
        body_field=filled.fields.body_field or "",
        fields=filled.fields.names,
        unknown_fields=filled.unknown_fields,
        converter=converter.name,
        timings=dict(clock.timings),
    )


def _bundled_roots(signer: object) -> list[x509.Certificate]:
    """Self-signed certificates shipped inside the PKCS#12: with no configured
    trust root, the post-signing check at least proves the chain it embeds."""
    registry = getattr(signer, "cert_registry", None)
    return [c for c in (registry or ()) if c.self_signed in ("maybe", "yes")]


def _verify(pdf: bytes, signing: SigningOptions, bundled: list[x509.Certificate]) -> None:
    """Refuse to hand over a PDF whose signature does not check out."""
    roots = load_certificates(signing.trust_roots) if signing.trust_roots else bundled
    report = verify_signed_pdf(pdf, trust_roots=roots, require_trusted=signing.require_trusted)
    if not report.ok:
        raise RenderError(f"signed PDF failed verification: {report.reason}")
