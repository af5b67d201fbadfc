"""The storage port's TLS certificate: a self-signed pair kept in the home, as the storage server
keeps its own (``cert.pem`` and ``key.pem`` in its data folder, made only when missing).

The certificate is made as session-storage-server's ``mkcert`` makes it
(``oxenss/server/server_certificates.cpp``): RSA 2048 with e = 65537, X.509 v3, serial 1, valid
from now for 10,000 days, subject = issuer ``C=AU, CN=localhost, O=Oxen``, its only extension a
subject key identifier, signed with SHA-256. The key is unencrypted PKCS#8 PEM in a file only the
owner may read (0600), written whole or not at all (:mod:`appchain.home.safefile`).

It proves nothing about the node, and is not meant to: Session clients accept any certificate on a
service node's storage port (Session Desktop's ``rejectUnauthorized: false``, Android's
trust-all manager), as the storage server does when it pings another node. A node's identity is
proven one layer up: an onion request is encrypted to the node's X25519 key, and a swarm
member's request is signed with its node key. The certificate only encrypts the connection, so
an eavesdropper on the path learns nothing beyond the addresses.

``appchain init`` makes the pair; a home made before the storage port served HTTPS gets it when
the node next starts (:meth:`appchain.home.home.Home.ensure_certificate`). An existing pair is
never replaced; a damaged one stops the start with one line naming the file.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from appchain.home.safefile import UnsafeTarget, write_atomically

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537
SERIAL = 1
VALID_DAYS = 10_000
SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "AU"),
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Oxen"),
    ]
)
"""``C=AU, CN=localhost, O=Oxen``, in the storage server's order."""


class CertificateError(Exception):
    """The home's certificate pair cannot be made or used: one line naming the file."""


def make_certificate(now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """A new self-signed (certificate, key) pair, both PEM, as the storage server makes it."""
    key = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
    start = now or datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(SUBJECT)
        .public_key(key.public_key())
        .serial_number(SERIAL)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def write_certificate(cert_path: Path, key_path: Path) -> bool:
    """Make the pair at these paths when both are missing (True); keep an existing pair (False).

    One file without the other is refused rather than replaced: the one present may be the
    operator's own."""
    present = [path for path in (cert_path, key_path) if path.exists() or path.is_symlink()]
    if len(present) == 2:
        return False
    if present:
        (there,) = present
        missing = key_path if there == cert_path else cert_path
        raise CertificateError(
            f"{missing} is missing beside {there}: restore it, or remove {there.name} to make a new pair"
        )
    certificate, key = make_certificate()
    try:
        write_atomically(key_path, key, force=False, mode=0o600, home_file=True)
        write_atomically(cert_path, certificate, force=False, mode=0o644, home_file=True)
    except UnsafeTarget as exc:
        raise CertificateError(str(exc)) from None
    except OSError as exc:
        raise CertificateError(f"cannot write {cert_path.parent}: {exc.strerror or exc}") from None
    return True


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """The TLS context the storage port serves with (TLS 1.2 at least, Python's defaults
    otherwise); :class:`CertificateError` naming the file when the pair cannot be used."""
    for path in (cert_path, key_path):
        if not path.is_file():
            raise CertificateError(f"{path} not found: the storage port needs its certificate and key")
    try:
        x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        raise CertificateError(
            f"{cert_path}: not a PEM certificate (remove it and {key_path.name} to make a new pair)"
        ) from None
    except OSError as exc:
        raise CertificateError(f"cannot read {cert_path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        raise CertificateError(
            f"{key_path}: not the private key of {cert_path.name} ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise CertificateError(f"cannot read {key_path}: {exc.strerror or exc}") from None
    return context


def client_context() -> ssl.SSLContext:
    """The TLS context for reaching a service node's storage port: encrypted, with no certificate
    check (see the module docstring: the node's identity is proven by the onion layer and by
    node-key signatures, never by its self-signed certificate). No authority is loaded, since none
    is consulted: loading the system's (``ssl.create_default_context``) takes ~20 ms, more than
    the handshake itself."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
