"""PAdES signatures with pyHanko: sign, verify, and make a TEST certificate.

The signature is PAdES baseline B-B (offline), or B-T when a time-stamping
authority URL is configured. The client's key comes from a PKCS#12 file whose
passphrase is read from an environment variable, an owner-only file, or a prompt,
never from the configuration, so a leaked config file does not leak the key.

Verification is done on the bytes that are about to be written, before the job
moves on: the signature must be intact, cryptographically valid and cover the whole
file. Trust in the signer's chain is checked against explicitly given roots only
(no operating-system trust store), which is how tests and demos trust the TEST root.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata.model import VENDOR
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers, timestamps
from pyhanko.sign.general import SigningError
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from transcribe.documents.options import SigningOptions
from transcribe.errors import ConfigError, RenderError
from transcribe.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

TEST_LABEL = "TEST — NOT FOR PRODUCTION"
#: The producer name pyHanko writes into the XMP packet when it signs.
SIGNING_PRODUCER = VENDOR
STAMP_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def read_owner_only(path: Path) -> str:
    """Read a secret file, refusing one that group or others could read too."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfigError(f"cannot open passphrase file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"passphrase file {path} is accessible to group/others "
                f"(mode {stat.filemode(mode)})",
                hint=f"chmod 600 {path}",
            )
        return handle.read().rstrip("\r\n")


def read_passphrase(options: SigningOptions) -> bytes | None:
    """The PKCS#12 passphrase from the first configured source; None if none is."""
    if options.passphrase_env:
        value = os.environ.get(options.passphrase_env)
        if value is None:
            raise ConfigError(
                f"environment variable {options.passphrase_env} is not set",
                hint="export it with the certificate passphrase",
            )
        return value.encode("utf-8")
    if options.passphrase_file is not None:
        return read_owner_only(options.passphrase_file).encode("utf-8")
    if options.passphrase_prompt is not None:
        return options.passphrase_prompt(f"Passphrase for {options.pkcs12.name}: ").encode("utf-8")
    return None


def load_signer(options: SigningOptions) -> signers.SimpleSigner:
    """Open the client's PKCS#12 early, so a wrong passphrase fails before rendering."""
    try:
        data = options.pkcs12.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read signing certificate {options.pkcs12}: {exc.strerror}"
        ) from exc
    if options.pkcs12.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("signing key %s is readable by group/others; chmod 600 it", options.pkcs12)
    try:
        return signers.SimpleSigner.load_pkcs12_data(data, (), passphrase=read_passphrase(options))
    except ValueError as exc:
        raise ConfigError(
            f"cannot open signing certificate {options.pkcs12.name}",
            hint="wrong passphrase or not a PKCS#12 file",
        ) from exc


def signer_name(signer: signers.SimpleSigner) -> str:
    return signer.signing_cert.subject.human_friendly


def _stamp_style(options: SigningOptions) -> object:
    """A visible stamp needs an embedded font: PDF/A forbids the standard 14."""
    try:
        from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
        from pyhanko.pdf_utils.text import TextBoxStyle
        from pyhanko.stamp import TextStampStyle
    except ImportError as exc:
        raise ConfigError(
            "a visible signature stamp needs fontTools", hint='pip install "pyhanko[opentype]"'
        ) from exc
    font = options.stamp_font or next((Path(p) for p in STAMP_FONTS if Path(p).exists()), None)
    if font is None or not font.exists():
        raise ConfigError("no TrueType font found for the signature stamp", hint="set stamp_font")
    return TextStampStyle(
        stamp_text="Signé électroniquement / Digitally signed\n%(signer)s\n%(ts)s",
        text_box_style=TextBoxStyle(font=GlyphAccumulatorFactory(str(font)), font_size=7),
        border_width=1,
    )


def sign_pdf_bytes(
    pdf: bytes,
    options: SigningOptions,
    *,
    signer: signers.SimpleSigner | None = None,
    timestamper: timestamps.TimeStamper | None = None,
) -> bytes:
    """Sign ``pdf`` (PAdES; B-T if a timestamper or ``timestamp_url`` is given)."""
    signer = signer or load_signer(options)
    if timestamper is None and options.timestamp_url:
        timestamper = timestamps.HTTPTimeStamper(
            options.timestamp_url, timeout=options.timestamp_timeout_s
        )
    meta = signers.PdfSignatureMetadata(
        field_name=options.field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=options.reason,
        location=options.location,
        contact_info=options.contact,
    )
    field_spec = None
    stamp = None
    if options.visible_stamp:
        field_spec = fields.SigFieldSpec(
            options.field_name, on_page=options.stamp_page, box=options.stamp_box
        )
        stamp = _stamp_style(options)
    pdf_signer = signers.PdfSigner(
        meta, signer, timestamper=timestamper, stamp_style=stamp, new_field_spec=field_spec
    )
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        output = pdf_signer.sign_pdf(writer, output=io.BytesIO())
    except (SigningError, PdfError, OSError) as exc:
        raise RenderError(f"signing failed: {exc}") from exc
    return output.getvalue()


@dataclass(frozen=True)
class SignatureReport:
    """The verdict on one signed PDF; ``ok`` is what the pipeline acts on."""

    ok: bool
    intact: bool
    valid: bool
    trusted: bool
    whole_document: bool
    timestamped: bool
    signer: str | None
    signed_at: dt.datetime | None
    problems: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.problems) or "signature valid"


def load_certificates(items: Sequence[Path | x509.Certificate]) -> list[x509.Certificate]:
    """PEM or DER certificate files (or certificates already loaded), as pyHanko's
    validator wants them."""
    certificates: list[x509.Certificate] = []
    for item in items:
        if isinstance(item, x509.Certificate):
            certificates.append(item)
            continue
        data = item.read_bytes()
        if pem.detect(data):
            certificates.extend(
                x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)
            )
        else:
            certificates.append(x509.Certificate.load(data))
    return certificates


def verify_signed_pdf(
    pdf: Path | bytes,
    *,
    trust_roots: Sequence[Path | x509.Certificate] = (),
    require_trusted: bool = False,
) -> SignatureReport:
    """Check every signature in ``pdf``: intact, valid, covering the whole file."""
    data = pdf.read_bytes() if isinstance(pdf, Path) else pdf
    try:
        signatures = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
    except (PdfError, ValueError, OSError) as exc:
        return _failed(f"unreadable PDF: {exc}")
    if not signatures:
        return _failed("the PDF carries no signature")
    context = ValidationContext(trust_roots=load_certificates(trust_roots), allow_fetching=False)
    try:
        status = validate_pdf_signature(signatures[-1], context)
    except (SignatureValidationError, PdfError, ValueError) as exc:
        return _failed(f"signature cannot be validated: {exc}")
    return _report(status, len(signatures), require_trusted)


def _report(status: PdfSignatureStatus, count: int, require_trusted: bool) -> SignatureReport:
    whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    problems = [
        text
        for failed, text in (
            (not status.intact, "signed content was modified (digest mismatch)"),
            (not status.valid, "signature value does not verify"),
            (not whole, "signature does not cover the whole document"),
            (require_trusted and not status.trusted, "signer certificate is not trusted"),
            (count != 1, f"expected one signature, found {count}"),
        )
        if failed
    ]
    return SignatureReport(
        ok=not problems,
        intact=status.intact,
        valid=status.valid,
        trusted=status.trusted,
        whole_document=whole,
        timestamped=status.timestamp_validity is not None,
        signer=status.signing_cert.subject.human_friendly,
        signed_at=status.signer_reported_dt,
        problems=tuple(problems),
    )


def _failed(reason: str) -> SignatureReport:
    return SignatureReport(False, False, False, False, False, False, None, None, (reason,))


@dataclass(frozen=True)
class TestCertificate:
    """Where ``make_test_certificate`` put the demo key and the root to trust."""

    __test__ = False  # not a pytest class

    pkcs12: Path
    root_certificate: Path
    subject: str


def _name(common_name: str, organisation: str) -> cx509.Name:
    return cx509.Name(
        [
            cx509.NameAttribute(NameOID.COMMON_NAME, common_name),
            cx509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            cx509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        ]
    )


def _certificate(
    subject: cx509.Name,
    issuer: cx509.Name,
    key: rsa.RSAPrivateKey,
    signing_key: rsa.RSAPrivateKey,
    *,
    ca: bool,
    days: int,
) -> cx509.Certificate:
    now = dt.datetime.now(dt.UTC)
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    usage.update(key_cert_sign=ca, crl_sign=ca, digital_signature=not ca, content_commitment=not ca)
    builder = (
        cx509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(cx509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(cx509.KeyUsage(**usage), critical=True)
        .add_extension(cx509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            cx509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(signing_key, hashes.SHA256())


def make_test_certificate(
    pkcs12_path: Path,
    *,
    passphrase: str,
    holder: str = "Demo Signer",
    organisation: str = "Transcribe demo",
    valid_days: int = 825,
    root_path: Path | None = None,
) -> TestCertificate:
    """A throw-away CA and signing certificate for ``init --demo`` and tests.

    Both names say ``TEST — NOT FOR PRODUCTION`` so that nobody mistakes a demo
    signature for a real one. The PKCS#12 (key, certificate, root) is written
    owner-only; the root certificate (public) goes to ``root_path``, by default
    beside it as ``<name>.root.pem``, to be trusted explicitly by verification.
    """
    if not passphrase:
        raise ConfigError("a TEST certificate still needs a passphrase")
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name(f"{TEST_LABEL} Root CA", organisation)
    leaf_name = _name(f"{holder} ({TEST_LABEL})", organisation)
    root = _certificate(root_name, root_name, root_key, root_key, ca=True, days=valid_days + 1)
    leaf = _certificate(leaf_name, root_name, leaf_key, root_key, ca=False, days=valid_days)
    bundle = pkcs12.serialize_key_and_certificates(
        name=holder.encode("utf-8"),
        key=leaf_key,
        cert=leaf,
        cas=[root],
        encryption_algorithm=serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
    )
    root_path = root_path or pkcs12_path.with_name(f"{pkcs12_path.stem}.root.pem")
    atomic_write_bytes(pkcs12_path, bundle, mode=0o600)
    atomic_write_bytes(root_path, root.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return TestCertificate(pkcs12_path, root_path, leaf_name.rfc4514_string())
