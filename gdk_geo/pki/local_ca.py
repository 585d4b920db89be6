"""The local CA (`<data_dir>/ca/`) that signs the TLS pair every node serves.

Reused while it is sound; anything else (a missing half, a key that does not match, a
certificate that is no CA, one that expires before the next server certificate would) gets
a fresh CA, and with it fresh server certificates. Nothing here touches the system trust
store; clients trust `ca/ca.crt` (or the chain in `registry_host.crt`) explicitly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gdk_geo.fsutil import atomic_write
from gdk_geo.pki.x509_parts import (
    CERT_MODE,
    KEY_MODE,
    PrivateKey,
    cert_pem,
    day,
    is_ca,
    key_pem,
    key_usage,
    load_certificates,
    load_private_key,
    same_public_key,
    self_signed,
)

CA_DIR = "ca"
CA_CERT_NAME = "ca.crt"
CA_KEY_NAME = "ca.key"
CA_LIFETIME = timedelta(days=3650)
CA_COMMON_NAME = "gdk-geo local CA"


def ensure_ca(
    ca_dir: Path, now: datetime, leaf_lifetime: timedelta
) -> tuple[x509.Certificate, PrivateKey, str]:
    """The CA to sign with and what was done: "created", "reused" or "renewed: <why>".

    `leaf_lifetime` is how long the next server certificate lives: a CA that expires
    before it would break the chain mid-way, so it is renewed first."""
    cert_path, key_path = ca_dir / CA_CERT_NAME, ca_dir / CA_KEY_NAME
    missing = [path.name for path in (cert_path, key_path) if not path.exists()]
    if len(missing) == 2:
        return (*_write_ca(ca_dir, now), "created")
    if missing:
        return (*_write_ca(ca_dir, now), f"renewed: {missing[0]} is missing")
    cert = load_certificates(cert_path)[0]
    key = load_private_key(key_path)
    problem = _ca_problem(cert, key, now + leaf_lifetime)
    if problem:
        return (*_write_ca(ca_dir, now), f"renewed: {problem}")
    return cert, key, "reused"


def _ca_problem(cert: x509.Certificate, key: PrivateKey, needed_until: datetime) -> str | None:
    """Why this CA cannot sign the next server certificate, or None when it can."""
    if not same_public_key(cert, key):
        return f"{CA_KEY_NAME} does not match {CA_CERT_NAME}"
    if not is_ca(cert):
        return f"{CA_CERT_NAME} is not a CA certificate"
    if cert.not_valid_after_utc < needed_until:
        return f"the CA expires {day(cert.not_valid_after_utc)}, before a new certificate would"
    return None


def _write_ca(ca_dir: Path, now: datetime) -> tuple[x509.Certificate, PrivateKey]:
    """A new self-signed CA; the key is written first so a crash never leaves a keyless cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        self_signed(key, CA_COMMON_NAME, now, CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(ca_dir / CA_KEY_NAME, key_pem(key), mode=KEY_MODE)
    atomic_write(ca_dir / CA_CERT_NAME, cert_pem(cert), mode=CERT_MODE)
    return cert, key
