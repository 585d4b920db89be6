"""Local TLS for every node: the `registry_host.crt`/`.key` pair they serve, signed by the
local CA (`local_ca.py`), and what `geo.status` and `geo.check` read about certificates.

GDK keeps its registry's TLS pair in `registry_host.crt`/`registry_host.key` and its token
signing pair in `localhost.crt`/`localhost.key` (`signing.py`). The TLS pair is generated,
signed by a local CA
(`<data_dir>/ca/`), written into the primary's node root and copied to every other node's,
and every run checks it again: it is reused while it is valid and regenerated when it is
about to expire, names another hostname or another set of node addresses, no longer
matches its key or was signed by a CA we no longer have. Nothing here touches the system
trust store; clients trust `ca/ca.crt` (or `registry_host.crt`, see below) explicitly.

Keys are EC P-256. Generation is instant (RSA 2048 takes tens to hundreds of milliseconds,
which adds up in tests), the security level matches RSA 3072, and every client we care
about accepts it: Go's crypto/tls (the registry, Docker), OpenSSL (Python, curl) and browsers.

`registry_host.crt` holds the leaf certificate followed by the CA certificate. A server that
loads it sends the full chain, and a client that is pointed at this one file as its CA
bundle (the secondary worker's `ca_file`, `curl --cacert`, Docker's `certs.d`) finds the CA
in it as a trust anchor. A leaf alone would not do: OpenSSL only accepts a self-signed
certificate as an anchor, so a bundle holding just the leaf fails verification.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.pki.local_ca import CA_CERT_NAME, CA_DIR, ensure_ca
from gdk_geo.pki.x509_parts import (
    CERT_MODE,
    KEY_MODE,
    PrivateKey,
    builder,
    cert_pem,
    common_name,
    day,
    issued_by,
    key_pem,
    key_usage,
    load_certificates,
    load_private_key,
    same_public_key,
    san_string,
    san_strings,
    sha256_fingerprint,
)
from gdk_geo.pki.x509_parts import copy_pair as copy_pair_files

CERT_NAME = "registry_host.crt"
KEY_NAME = "registry_host.key"
# The previous release served TLS from the names GDK gives the token signing pair.
PREVIOUS_CERT_NAME = "localhost.crt"
PREVIOUS_KEY_NAME = "localhost.key"

# Apple and the browsers reject server certificates valid for more than 398 days.
LEAF_LIFETIME = timedelta(days=365)
RENEW_WITHIN = timedelta(days=30)


@dataclass(frozen=True)
class CertInfo:
    """What `geo.status` and `geo.check` show about a certificate file (its first certificate)."""

    path: Path
    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    fingerprint: str


@dataclass(frozen=True)
class CertificateReport:
    """What `ensure_certificates` did, so `geo.setup` can tell the user in one line each."""

    action: str  # "created", "reused" or "renewed: <reason>" for the server certificate
    ca_action: str  # the same vocabulary for the CA
    copied_to: int  # how many other nodes' copies had to be (re)written

    @property
    def copied(self) -> bool:
        return self.copied_to > 0

    fingerprint: str
    not_after: datetime
    certificate: Path
    key: Path
    ca_certificate: Path


def ensure_certificates(
    data_dir: Path,
    hostname: str,
    primary_root: Path,
    *other_roots: Path,
    addresses: Sequence[str] = (),
    now: datetime | None = None,
) -> CertificateReport:
    """Make sure every node holds a valid `registry_host.crt`/`.key` for `hostname`: made
    in the primary's root, copied to each other root.

    `addresses` are the nodes' addresses the certificate must name too (where other nodes
    and clients reach them): an IP SAN for an IP address, a DNS SAN for a name, besides
    `hostname`, `localhost`, 127.0.0.1 and ::1. The certificate is re-issued when the names
    it holds are not this set (in any order; a name given twice counts once).

    Safe to run on every setup and restart: files that are still good are left untouched
    (same bytes, same mtime), so nothing downstream restarts for no reason. `now` exists
    so tests can look a year ahead without waiting for one.
    """
    now = _as_utc(now or datetime.now(UTC))
    _check_hostname(hostname)
    if isinstance(addresses, str):  # one address, not a sequence of one-letter names
        raise TypeError("addresses must be a sequence of addresses, not one string")
    for address in addresses:
        _check_address(address)
    names = _expected_sans(hostname, addresses)
    for root in (primary_root, *other_roots):
        move_previous_tls_pair(root)
    ca_cert, ca_key, ca_action = ensure_ca(data_dir / CA_DIR, now, LEAF_LIFETIME)
    action = _ensure_leaf(primary_root, hostname, names, ca_cert, ca_key, now)
    copies = sum(copy_pair(primary_root, root) for root in other_roots)
    info = certificate_info(primary_root / CERT_NAME)
    return CertificateReport(
        action=action,
        ca_action=ca_action,
        copied_to=copies,
        fingerprint=info.fingerprint,
        not_after=info.not_after,
        certificate=primary_root / CERT_NAME,
        key=primary_root / KEY_NAME,
        ca_certificate=data_dir / CA_DIR / CA_CERT_NAME,
    )


def certificate_info(path: Path) -> CertInfo:
    """Subject, SANs, validity and fingerprint of the first certificate in `path`."""
    cert = load_certificates(path)[0]
    return CertInfo(
        path=path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=tuple(san_strings(cert)),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=sha256_fingerprint(cert),
    )


def fingerprint(path: Path) -> str:
    """SHA-256 fingerprint of the first certificate in `path`, as `openssl x509 -fingerprint`."""
    return sha256_fingerprint(load_certificates(path)[0])


# --- the server certificate ---------------------------------------------------------------


def _ensure_leaf(
    root: Path,
    hostname: str,
    names: list[x509.GeneralName],
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    now: datetime,
) -> str:
    """Keep the primary's pair when it is still right, otherwise write a new one and say why."""
    cert_path, key_path = root / CERT_NAME, root / KEY_NAME
    missing = [path.name for path in (cert_path, key_path) if not path.exists()]
    if len(missing) == 2:
        _write_leaf(root, hostname, names, ca_cert, ca_key, now)
        return "created"
    if missing:
        problem: str | None = f"{missing[0]} is missing"
    else:
        chain = load_certificates(cert_path)
        key = load_private_key(key_path)
        problem = _leaf_problem(chain, key, ca_cert, hostname, names, now)
    if problem is None:
        return "reused"
    _write_leaf(root, hostname, names, ca_cert, ca_key, now)
    return f"renewed: {problem}"


def _leaf_problem(
    chain: list[x509.Certificate],
    key: PrivateKey,
    ca_cert: x509.Certificate,
    hostname: str,
    names: list[x509.GeneralName],
    now: datetime,
) -> str | None:
    """Why the existing server certificate must be replaced, or None when it can stay."""
    leaf = chain[0]
    if not same_public_key(leaf, key):
        return f"{KEY_NAME} does not match {CERT_NAME}"
    if chain[1:] != [ca_cert] or not issued_by(leaf, ca_cert):
        return "the CA changed"
    wanted = [san_string(name) for name in names]
    have = san_strings(leaf)
    if sorted(have) != sorted(wanted):
        what = "hostname" if san_string(_general_name(hostname)) not in have else "addresses"
        return f"the {what} changed (SANs {', '.join(have)} -> {', '.join(wanted)})"
    if leaf.not_valid_after_utc - now <= RENEW_WITHIN:
        days = RENEW_WITHIN.days
        return f"expires {day(leaf.not_valid_after_utc)}, within {days} days"
    return None


def _write_leaf(
    root: Path,
    hostname: str,
    names: list[x509.GeneralName],
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    now: datetime,
) -> None:
    """A new key and certificate for `hostname` naming `names`, with the CA appended (see
    the module doc)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        builder(key, common_name(_leaf_common_name(hostname)), ca_cert.subject, now, LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage("digital_signature"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # Key first: if we crash in between, the next run sees a mismatch and starts over.
    atomic_write(root / KEY_NAME, key_pem(key), mode=KEY_MODE)
    atomic_write(root / CERT_NAME, cert_pem(cert) + cert_pem(ca_cert), mode=CERT_MODE)


def _expected_sans(hostname: str, addresses: Sequence[str] = ()) -> list[x509.GeneralName]:
    """hostname, localhost, 127.0.0.1, ::1 and the nodes' `addresses`, each once, so every
    way of dialling verifies."""
    names: list[x509.GeneralName] = [
        _general_name(hostname),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        *(_general_name(address) for address in addresses),
    ]
    unique: list[x509.GeneralName] = []
    for name in names:
        if name not in unique:
            unique.append(name)
    return unique


def _general_name(hostname: str) -> x509.GeneralName:
    """An IP literal must be an IP SAN: clients never match an address against a DNS SAN."""
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def _leaf_common_name(hostname: str) -> str:
    """X.509 caps the CN at 64 characters; clients match SANs, so the CN is only a label."""
    return hostname if len(hostname) <= 64 else "gdk-geo server"


# --- the previous release's layout ------------------------------------------------------


def move_previous_tls_pair(root: Path) -> bool:
    """Rename a TLS pair the previous release left in `localhost.*` to `registry_host.*`.

    Before token auth, `localhost.crt`/`localhost.key` were the TLS pair (a CA-signed leaf
    followed by the CA). Those names now hold the token signing pair, so an upgraded node
    moves its TLS pair aside first: the registry keeps serving the same certificate, every
    client that trusts the CA still does, and the signing pair is then created fresh.
    A `localhost.crt` that is a single self-signed certificate is already a signing pair.
    """
    old_cert, old_key = root / PREVIOUS_CERT_NAME, root / PREVIOUS_KEY_NAME
    if (root / CERT_NAME).exists() or not old_cert.exists():
        return False
    try:
        chain = x509.load_pem_x509_certificates(old_cert.read_bytes())
    except ValueError:
        return False
    if len(chain) < 2:
        return False
    if old_key.exists():
        atomic_write(root / KEY_NAME, old_key.read_bytes(), mode=KEY_MODE)
        old_key.unlink()
    atomic_write(root / CERT_NAME, old_cert.read_bytes(), mode=CERT_MODE)
    old_cert.unlink()
    return True


# --- every other node's copy --------------------------------------------------------------


def copy_pair(primary_root: Path, other_root: Path) -> bool:
    """Give another node the same certificate and key (every node serves the one pair),
    when its copy differs by content or mode; True when it was written."""
    return copy_pair_files(primary_root, other_root, CERT_NAME, KEY_NAME)


# --- small helpers -----------------------------------------------------------------------


def _check_hostname(hostname: str) -> None:
    if not _fits_a_certificate(hostname):
        raise GdkGeoError(
            f"hostname {hostname!r} cannot go into a certificate",
            where="gdk.yml: hostname",
            fix="use a plain ASCII host name such as `localhost`, then rerun "
            "`invoke geo.reconfigure`",
        )


def _check_address(address: str) -> None:
    if not _fits_a_certificate(address):
        raise GdkGeoError(
            f"node address {address!r} cannot go into a certificate",
            fix="give each node's address as an IP address or a plain ASCII host name",
        )


def _fits_a_certificate(name: str) -> bool:
    return bool(name) and name.isascii() and not any(char.isspace() for char in name)


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, the way certificates store time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
