"""TLS files of the service: checked before serving, and the demo's TEST ones.

The service only ever serves HTTPS from files the operator names in ``[server]``
(a certificate chain and an owner-only private key). ``init --demo`` makes a TEST
certificate authority, signs a server certificate for this machine's loopback
names with it, and throws the authority's key away, so the demo CA cannot sign
anything else; clients trust it explicitly with ``--ca keys/demo-ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config import Config
from ..errors import ServiceError
from ..fsutil import atomic_write_bytes

TEST_LABEL = "TEST — NOT FOR PRODUCTION"
DEMO_CA_NAME = "demo-ca.pem"
#: The names the demo server certificate is valid for: this machine, over loopback.
DEMO_DNS = ("localhost",)
DEMO_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    private_key: Path


def tls_files(config: Config) -> TlsFiles:
    """The ``[server]`` files, checked: both present, the key owner-only."""
    home = config.paths.home
    files = TlsFiles(home / config.server.certificate, home / config.server.private_key)
    for path in (files.certificate, files.private_key):
        if not path.is_file():
            raise ServiceError(
                f"no TLS file {path}",
                hint="name your certificate and key in [server], or run `transcribe init --demo`"
                " for a TEST certificate",
            )
    mode = files.private_key.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServiceError(
            f"TLS private key {files.private_key} is accessible to group/others"
            f" ({stat.filemode(mode)})",
            hint=f"chmod 600 {files.private_key}",
        )
    return files


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Transcribe demo"),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def make_demo_tls(config: Config, *, days: int = 825) -> Path | None:
    """A TEST CA and a server certificate for the ``[server]`` files, unless they
    exist; returns the CA file clients must trust (``keys/demo-ca.pem``), or None.

    Elliptic-curve keys: made in microseconds, so every demo workspace (and every
    test's) gets its own without slowing anything down.
    """
    home = config.paths.home
    cert_path = home / config.server.certificate
    key_path = home / config.server.private_key
    ca_path = config.paths.keys / DEMO_CA_NAME
    if cert_path.exists() or key_path.exists():
        return None
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"Transcribe demo CA ({TEST_LABEL})")
    ca = (
        _builder(ca_name, ca_name, ca_key, days + 1)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName(n) for n in DEMO_DNS] + [
        x509.IPAddress(ipaddress.ip_address(ip)) for ip in DEMO_IPS
    ]
    server = (
        _builder(_name(f"localhost ({TEST_LABEL})"), ca_name, server_key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_bytes = server_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write_bytes(key_path, key_bytes, mode=0o600)
    atomic_write_bytes(cert_path, server.public_bytes(pem) + ca.public_bytes(pem), mode=0o644)
    atomic_write_bytes(ca_path, ca.public_bytes(pem), mode=0o644)
    os.chmod(key_path, 0o600)
    return ca_path


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
