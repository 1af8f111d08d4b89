"""The federation's TLS certificate authority for the boxes' HTTPS (BRIEF §3 Transport).

A box serves its web UI over HTTPS with a server certificate issued by the federation's
CA, whose root certificate each town installs on its terminals (docs/tls.md). The server
certificate names the box's host name(s) AND its IP address(es), so clerks can fall back to
`https://10.x.y.z/` when name resolution is down. Session cookies are Secure-only
(edge/auth.py), so plain HTTP is never an option.

Why the `cryptography` package here, when all other Renkei cryptography is PyNaCl: PyNaCl
(libsodium) has no X.509 at all, and browsers do not accept Ed25519 keys in TLS server
certificates — they need ECDSA (or RSA). So this module, and only this module, uses
`cryptography`'s x509 module to build and sign certificates with ECDSA P-256 / SHA-256.
It does not encrypt or sign any Renkei data; the TLS handshake itself is done by Python's
`ssl` module under uvicorn.

    federation TLS CA (ECDSA P-256, CA:true pathlen 0, 10 years, key kept offline with
    the federation root) ──signs──▶ box server certificate (ECDSA P-256, 397 days,
    SAN = DNS names + IP addresses, EKU serverAuth)

Formats: PEM everywhere. The CA key may be encrypted with a passphrase (PKCS#8,
best available encryption); a box's server key is unencrypted PKCS#8 in a 0600 file, since
the box must start unattended (it is not a town key: BRIEF §3's "no key at rest" concerns
the towns' keys).

Errors:

    TLSError          malformed PEM, CA key that does not match the CA certificate, a bad
                      host name or IP address, nothing to name
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME = "Renkei 連携 Federation CA"
ORGANIZATION = "Renkei Federation"
CA_VALIDITY_DAYS = 3650
SERVER_VALIDITY_DAYS = 397  # the CA/Browser Forum maximum for server certificates
BACKDATE = timedelta(days=1)  # tolerate a terminal whose clock is a little behind
CERT_FILE = "server.crt"
KEY_FILE = "server.key"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


class TLSError(Exception):
    """Bad input to certificate issuance (see the module docstring)."""


class ServerFiles(NamedTuple):
    cert: Path
    key: Path


# ---------------------------------------------------------------------------- parsing


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise TLSError(f"{what} is not a PEM certificate") from exc


def _load_ec_key(pem: bytes, passphrase: bytes | None, what: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise TLSError(f"{what} is not a PEM private key (or the passphrase is wrong)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TLSError(f"{what} is not an ECDSA key")
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise TLSError("now must be timezone-aware")
    return now.astimezone(UTC)


def _serial() -> int:
    # 159 random bits: positive, at most 20 octets, unpredictable (CA/B Forum wants >= 64).
    return int.from_bytes(os.urandom(20), "big") >> 1 or 1


def _hostnames(names: list[str]) -> list[str]:
    result = []
    for name in names:
        try:
            ascii_name = name.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise TLSError(f"bad host name {name!r}") from exc
        if not _HOSTNAME.match(ascii_name):
            raise TLSError(f"bad host name {name!r}")
        result.append(ascii_name)
    return result


def _ips(addresses: list[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(a) for a in addresses]
    except ValueError as exc:
        raise TLSError(f"bad IP address in {addresses!r}") from exc


# ---------------------------------------------------------------------------- issuing


def create_ca(
    common_name: str = CA_COMMON_NAME,
    *,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """A new federation TLS CA: (certificate PEM, private key PEM).

    ECDSA P-256, CA:true with path length 0 (it signs server certificates only, no
    intermediates), 10-year validity. Run once, in the key ceremony; `passphrase`
    encrypts the returned key."""
    start = _now(now) - BACKDATE
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key, passphrase)


def issue_server_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    hostnames: list[str],
    ip_addresses: list[str],
    days: int = SERVER_VALIDITY_DAYS,
    *,
    ca_passphrase: bytes | None = None,
    now: datetime | None = None,
) -> tuple[bytes, bytes]:
    """A box's server certificate and its fresh key: (certificate PEM, key PEM).

    The subject alternative names hold every host name (DNS) and IP address given, so
    the box can be reached by name or, as a fallback, by address. Validity is `days`
    (at most 397), cut to the CA's own end date."""
    if not 1 <= days <= SERVER_VALIDITY_DAYS:
        raise TLSError(f"days must be in 1..{SERVER_VALIDITY_DAYS}")
    names = _hostnames(hostnames)
    ips = _ips(ip_addresses)
    if not names and not ips:
        raise TLSError("a server certificate needs at least one host name or IP address")
    ca_cert = _load_cert(ca_cert_pem, "CA certificate")
    ca_key = _load_ec_key(ca_key_pem, ca_passphrase, "CA key")
    ca_public = ca_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ca_public != ca_cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise TLSError("the CA key does not belong to the CA certificate")

    start = _now(now) - BACKDATE
    end = min(start + BACKDATE + timedelta(days=days), ca_cert.not_valid_after_utc)
    if end <= start:
        raise TLSError("the CA certificate has expired")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    san += [x509.IPAddress(ip) for ip in ips]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else str(ips[0])),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key, None)


# ---------------------------------------------------------------------------- inspecting


def fingerprint(cert_pem: bytes, algorithm: Literal["sha256", "sha1"] = "sha256") -> str:
    """Fingerprint as colon-separated upper-case hex, for checking an installed root by
    eye: SHA-256 is what `openssl x509 -fingerprint -sha256` and Windows'
    `certutil -dump` ("Cert Hash(sha256)") print; SHA-1 is the 拇印 in Windows' certificate
    dialog."""
    digest_algorithm = hashes.SHA256() if algorithm == "sha256" else hashes.SHA1()
    digest = _load_cert(cert_pem, "certificate").fingerprint(digest_algorithm)
    return ":".join(f"{b:02X}" for b in digest)


def spki_sha256_b64(cert_pem: bytes) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo (an HPKP-style pin)."""
    spki = (
        _load_cert(cert_pem, "certificate")
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def needs_renewal(cert_pem: bytes, now: datetime | None = None, margin_days: int = 30) -> bool:
    """True when the certificate expires within `margin_days` (or already has)."""
    cert = _load_cert(cert_pem, "certificate")
    return cert.not_valid_after_utc - _now(now) <= timedelta(days=margin_days)


# ---------------------------------------------------------------------------- files


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_server_files(
    directory: str | os.PathLike[str], cert_pem: bytes, key_pem: bytes
) -> ServerFiles:
    """Write `server.crt` (0644) and `server.key` (0600) into `directory` (created 0700
    if missing), each atomically; the key never exists with wider permissions."""
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = ServerFiles(folder / CERT_FILE, folder / KEY_FILE)
    _write_atomic(files.key, key_pem, 0o600)
    _write_atomic(files.cert, cert_pem, 0o644)
    return files


def ssl_kwargs(directory: str | os.PathLike[str]) -> dict[str, str]:
    """Keyword arguments for `uvicorn.run(app, ..., **ssl_kwargs(dir))` (or
    `uvicorn.Config`): the files written by `write_server_files`."""
    folder = Path(directory)
    files = ServerFiles(folder / CERT_FILE, folder / KEY_FILE)
    for path in files:
        if not path.is_file():
            raise TLSError(f"missing {path}: issue a server certificate first (docs/tls.md)")
    return {"ssl_certfile": str(files.cert), "ssl_keyfile": str(files.key)}
