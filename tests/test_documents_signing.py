"""Signing: TEST certificate, passphrase sources, PAdES B-B and B-T, verification,
tampering seen by pyHanko and by poppler's pdfsig (no LibreOffice needed)."""

from __future__ import annotations

import datetime as dt
import http.server
import io
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import keys, tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps import DummyTimeStamper
from pypdf import PdfWriter

from transcribe.documents import SigningOptions, make_test_certificate, verify_signed_pdf
from transcribe.documents.signing import TEST_LABEL, load_signer, read_passphrase, sign_pdf_bytes
from transcribe.errors import ConfigError

PASS_ENV = "TRANSCRIBE_TEST_SIGNING_PASSPHRASE"
needs_pdfsig = pytest.mark.skipif(
    shutil.which("pdfsig") is None, reason="poppler-utils (pdfsig) not installed"
)


@pytest.fixture(scope="module")
def test_cert(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("keys")
    return make_test_certificate(folder / "demo.p12", passphrase="correct horse", holder="Dr Démo")


@pytest.fixture
def signing(test_cert, monkeypatch: pytest.MonkeyPatch) -> SigningOptions:
    monkeypatch.setenv(PASS_ENV, "correct horse")
    return SigningOptions(
        pkcs12=test_cert.pkcs12,
        passphrase_env=PASS_ENV,
        trust_roots=(test_cert.root_certificate,),
        require_trusted=True,
        reason="Compte rendu approuvé",
        location="Lyon",
    )


def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def flip_signed_byte(pdf: bytes) -> bytes:
    """Change one byte of the binary comment on line 2: inside the first signed
    range, and harmless to PDF parsers, so only the digest notices."""
    position = pdf.index(b"\n%", 0, 64) + 3
    tampered = bytearray(pdf)
    tampered[position] ^= 0x01
    return bytes(tampered)


def pdfsig(path: Path) -> str:
    result = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def test_test_certificate_is_labelled_and_owner_only(test_cert) -> None:
    assert TEST_LABEL in test_cert.subject and "Dr Démo" in test_cert.subject
    assert test_cert.pkcs12.stat().st_mode & 0o777 == 0o600
    root = x509.load_pem_x509_certificate(test_cert.root_certificate.read_bytes())
    assert TEST_LABEL in root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_passphrase_from_env_file_and_prompt(test_cert, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(PASS_ENV, "correct horse")
    assert (
        read_passphrase(SigningOptions(test_cert.pkcs12, passphrase_env=PASS_ENV))
        == b"correct horse"
    )
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse\n")
    secret.chmod(0o600)
    assert load_signer(SigningOptions(test_cert.pkcs12, passphrase_file=secret))
    asked: list[str] = []
    prompt = SigningOptions(
        test_cert.pkcs12, passphrase_prompt=lambda q: asked.append(q) or "correct horse"
    )
    assert load_signer(prompt) and asked == ["Passphrase for demo.p12: "]


def test_group_readable_passphrase_file_is_refused(test_cert, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse")
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match="accessible to group/others"):
        load_signer(SigningOptions(test_cert.pkcs12, passphrase_file=secret))


def test_wrong_or_missing_passphrase_is_a_config_error(test_cert, monkeypatch) -> None:
    monkeypatch.delenv(PASS_ENV, raising=False)
    with pytest.raises(ConfigError, match="not set"):
        load_signer(SigningOptions(test_cert.pkcs12, passphrase_env=PASS_ENV))
    monkeypatch.setenv(PASS_ENV, "wrong")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        load_signer(SigningOptions(test_cert.pkcs12, passphrase_env=PASS_ENV))
    with pytest.raises(ConfigError):
        SigningOptions(test_cert.pkcs12, timestamp_url="ftp://tsa.example")


def test_sign_verify_and_tamper(signing: SigningOptions, tmp_path: Path) -> None:
    signed = sign_pdf_bytes(blank_pdf(), signing)
    report = verify_signed_pdf(signed, trust_roots=signing.trust_roots, require_trusted=True)
    assert report.ok and report.intact and report.trusted and report.whole_document
    assert TEST_LABEL in (report.signer or "") and not report.timestamped
    untrusted = verify_signed_pdf(signed)
    assert untrusted.ok and not untrusted.trusted, "integrity holds without trust roots"
    broken = verify_signed_pdf(flip_signed_byte(signed), trust_roots=signing.trust_roots)
    assert not broken.ok and not broken.intact and "modified" in broken.reason
    appended = verify_signed_pdf(signed + b"\n% appended after signing\n")
    assert not appended.ok and not appended.whole_document
    assert not verify_signed_pdf(blank_pdf()).ok


@needs_pdfsig
def test_pdfsig_agrees(signing: SigningOptions, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    good.write_bytes(sign_pdf_bytes(blank_pdf(), signing))
    bad.write_bytes(flip_signed_byte(good.read_bytes()))
    out = pdfsig(good)
    assert "Signature is Valid" in out and "Total document signed" in out
    assert "Signature is Valid" not in pdfsig(bad)


def make_tsa(folder: Path) -> tuple[DummyTimeStamper, Path]:
    """A self-signed time-stamping authority, for a local B-T test."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{TEST_LABEL} TSA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = folder / "tsa.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    stamper = DummyTimeStamper(
        tsa_cert=ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        tsa_key=keys.PrivateKeyInfo.load(der_key),
    )
    return stamper, pem


@pytest.fixture
def tsa_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    stamper, pem = make_tsa(tmp_path)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
            reply = stamper.request_tsa_response(request).dump()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", pem
    finally:
        server.shutdown()
        server.server_close()


def test_pades_b_t_with_a_time_stamping_authority(signing, tsa_url) -> None:
    url, tsa_root = tsa_url
    options = SigningOptions(
        pkcs12=signing.pkcs12,
        passphrase_env=signing.passphrase_env,
        timestamp_url=url,
        trust_roots=(*signing.trust_roots, tsa_root),
    )
    assert options.pades_level == "B-T"
    signed = sign_pdf_bytes(blank_pdf(), options)
    report = verify_signed_pdf(signed, trust_roots=options.trust_roots, require_trusted=True)
    assert report.ok and report.timestamped


def test_visible_stamp(signing: SigningOptions) -> None:
    pytest.importorskip("fontTools", reason="visible stamps need pyhanko[opentype]")
    options = SigningOptions(
        pkcs12=signing.pkcs12, passphrase_env=signing.passphrase_env, visible_stamp=True
    )
    signed = sign_pdf_bytes(blank_pdf(), options)
    assert verify_signed_pdf(signed).ok
    assert b"/FontFile2" in signed, "stamp font is embedded (PDF/A)"
