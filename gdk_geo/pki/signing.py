"""The registry token signing pair: `localhost.crt`/`localhost.key` in each node root.

GDK signs registry tokens with `localhost.key` (`gitlab.yml`: `registry.key`) and its
registry trusts `localhost.crt` (`auth.token.rootcertbundle`). GitLab Geo uses one pair for
every site: the secondary mints short-lived pull tokens that the primary's registry accepts,
which is why the seed says to copy both files from the primary to the secondary.

The pair is RSA 2048 (GitLab signs RS256, and Distribution 2.x verifies RSA and EC alike),
in a self-signed certificate: the registry only reads the public key from it. Beside it,
`localhost.jwks.json` holds the same key as a JWK Set under the `kid` our tokens carry, for
Distribution 3.x (`gdk_geo.registry.tokens` says why). The pair is made on the primary,
copied to every other node, and checked on every run: reused while it is sound, re-made when
it is missing, not RSA, not a consistent RSA key, mismatched or about to expire. The
consistency check is done here, once a run, so that the services load the key without
it. Each node's JWKS is written from its own `localhost.crt` after that, when its bytes
would change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gdk_geo.fsutil import atomic_write, atomic_write_if_changed
from gdk_geo.pki import certs, x509_parts
from gdk_geo.registry.tokens import load_signing_files, signing_jwk

CERT_NAME = "localhost.crt"
KEY_NAME = "localhost.key"
JWKS_NAME = "localhost.jwks.json"
COMMON_NAME = "gdk-geo registry token signing"
LIFETIME = timedelta(days=3650)
RENEW_WITHIN = timedelta(days=30)
RSA_BITS = 2048


@dataclass(frozen=True)
class SigningReport:
    """What `ensure_signing_pair` did: "created", "reused" or "renewed: <why>"."""

    action: str
    copied_to: int  # how many other nodes' copies had to be (re)written
    fingerprint: str

    @property
    def copied(self) -> bool:
        return self.copied_to > 0


def ensure_signing_pair(
    primary_root: Path, *other_roots: Path, now: datetime | None = None
) -> SigningReport:
    """Every node holds the same sound signing pair; files that are fine stay untouched.

    The primary's pair is checked once however many nodes get it: the check loads the key
    with cryptography's consistency check, about 55 ms.
    """
    now = now or datetime.now(UTC)
    cert_path, key_path = primary_root / CERT_NAME, primary_root / KEY_NAME
    problem = _problem(cert_path, key_path, now)
    if problem == "missing":
        _write_pair(primary_root, now)
        action = "created"
    elif problem:
        _write_pair(primary_root, now)
        action = f"renewed: {problem}"
    else:
        action = "reused"
    copies = sum(
        x509_parts.copy_pair(primary_root, root, CERT_NAME, KEY_NAME) for root in other_roots
    )
    for root in (primary_root, *other_roots):
        _write_jwks(root)
    return SigningReport(action, copies, certs.fingerprint(cert_path))


def load_signing_key(key_path: Path) -> rsa.RSAPrivateKey:
    """The node's signing key (with its certificate beside it); a bad one is a user error."""
    return load_signing_files(key_path, key_path.with_name(CERT_NAME))[0]


def load_signing_certificate(cert_path: Path) -> x509.Certificate:
    """The first certificate of `localhost.crt`: the key every registry verifies tokens with."""
    return load_signing_files(cert_path.with_name(KEY_NAME), cert_path)[1]


def differing_files(primary_root: Path, secondary_root: Path) -> list[str]:
    """Names of the signing files whose bytes differ between the nodes (or are missing)."""
    differ = []
    for name in (CERT_NAME, KEY_NAME):
        a, b = primary_root / name, secondary_root / name
        if not a.exists() or not b.exists() or a.read_bytes() != b.read_bytes():
            differ.append(name)
    return differ


def _problem(cert_path: Path, key_path: Path, now: datetime) -> str | None:
    """Why the pair must be re-made ("missing" when neither file exists), or None."""
    if not cert_path.exists() and not key_path.exists():
        return "missing"
    for path in (cert_path, key_path):
        if not path.exists():
            return f"{path.name} is missing"
    key_pem = key_path.read_bytes()
    try:
        chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
        key = serialization.load_pem_private_key(
            key_pem, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        return f"{CERT_NAME} or {KEY_NAME} does not parse"
    if not isinstance(key, rsa.RSAPrivateKey):
        return f"{KEY_NAME} is not an RSA key"
    if not _consistent(key_pem):
        return f"{KEY_NAME} is not a consistent RSA key"
    cert = chain[0]
    if not _same_key(cert, key):
        return f"{KEY_NAME} does not match {CERT_NAME}"
    if len(chain) != 1:
        return f"{CERT_NAME} holds a chain, not the signing certificate alone"
    if cert.not_valid_after_utc - now <= RENEW_WITHIN:
        return f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _consistent(key_pem: bytes) -> bool:
    """cryptography's RSA key check, done here once a run so that the services and tools
    that load the key after this may skip it (`token_auth.minter_for`)."""
    try:
        serialization.load_pem_private_key(key_pem, password=None)
    except ValueError:
        return False
    return True


def _write_pair(root: Path, now: datetime) -> None:
    """A new RSA key and its self-signed certificate; the key first, as certs.py does."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    cert = (
        x509_parts.self_signed(key, COMMON_NAME, now, LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / KEY_NAME, pem_key, mode=x509_parts.KEY_MODE)
    atomic_write(
        root / CERT_NAME, cert.public_bytes(serialization.Encoding.PEM), mode=x509_parts.CERT_MODE
    )


def _same_key(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def _write_jwks(root: Path) -> None:
    """Keep the node's JWKS equal to its certificate's key (untouched when it already is)."""
    key = x509_parts.load_certificates(root / CERT_NAME)[0].public_key()
    assert isinstance(key, rsa.RSAPublicKey)  # `_problem` re-made any pair that is not RSA
    data = (json.dumps({"keys": [signing_jwk(key)]}, indent=2) + "\n").encode()
    atomic_write_if_changed(root / JWKS_NAME, data, mode=x509_parts.CERT_MODE)
