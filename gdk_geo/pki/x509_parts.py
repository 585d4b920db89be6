"""What every certificate gdk-geo makes is built from and read with: the key types, file
modes, a self-signed builder, key usages, PEM reading and encoding, and what a
certificate says (its SANs, its issuer, its fingerprint).

Shared by the local CA (`local_ca.py`), the TLS pair (`certs.py`) and the token signing
pair (`signing.py`), so each reads a broken file with the same message and fix.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import copy_if_changed

CERT_MODE = 0o644
KEY_MODE = 0o600

# Backdate notBefore so a container whose clock lags the host's still accepts a fresh cert.
CLOCK_SKEW = timedelta(minutes=5)

REGENERATE_FIX = "delete it and rerun `invoke geo.reconfigure`; a new one is generated"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# Every flag of X.509's KeyUsage, in the order `x509.KeyUsage` takes them.
_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def builder(
    key: PrivateKey, subject: x509.Name, issuer: x509.Name, now: datetime, lifetime: timedelta
) -> x509.CertificateBuilder:
    """A certificate for `key`, valid from a little before `now` (clock skew between the
    nodes' readers) for `lifetime`, with a random serial; extensions are the caller's."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
    )


def common_name(name: str) -> x509.Name:
    """A distinguished name that is just a CN: all the subject a local certificate needs."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def self_signed(
    key: PrivateKey, name: str, now: datetime, lifetime: timedelta
) -> x509.CertificateBuilder:
    """A certificate naming `name` as subject and issuer (the CA, the signing pair)."""
    return builder(key, common_name(name), common_name(name), now, lifetime)


def key_usage(*granted: str) -> x509.KeyUsage:
    """A KeyUsage that grants `granted` and nothing else: each certificate names what its
    key may do, rather than spelling out all nine flags."""
    unknown = set(granted) - set(_KEY_USAGES)
    if unknown:
        raise ValueError(f"not a key usage: {', '.join(sorted(unknown))}")
    return x509.KeyUsage(**{name: name in granted for name in _KEY_USAGES})


# --- reading ------------------------------------------------------------------------------


def read_file(path: Path) -> bytes:
    """The bytes of a certificate or key file, or an error that says how to get it back."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise GdkGeoError(
            f"{path.name} does not exist",
            where=str(path),
            fix="run `invoke geo.reconfigure` to generate the certificates",
        ) from None
    except OSError as exc:
        raise GdkGeoError(
            f"cannot read {path.name}: {exc.strerror}", where=str(path), fix=REGENERATE_FIX
        ) from None


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file, in order (a chain: the leaf first)."""
    try:
        return x509.load_pem_x509_certificates(read_file(path))
    except ValueError:
        raise GdkGeoError(
            f"{path.name} is not a valid PEM certificate", where=str(path), fix=REGENERATE_FIX
        ) from None


def load_private_key(path: Path) -> PrivateKey:
    """An unencrypted EC or RSA key; anything else is an error the user can fix."""
    try:
        key = serialization.load_pem_private_key(read_file(path), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise GdkGeoError(
            f"{path.name} is not a valid unencrypted PEM private key",
            where=str(path),
            fix=REGENERATE_FIX,
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise GdkGeoError(
            f"{path.name} holds a {type(key).__name__}, not an EC or RSA key",
            where=str(path),
            fix=REGENERATE_FIX,
        )
    return key


def key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 without a passphrase: the registry reads its key with none."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """A certificate as PEM, the form every file here holds."""
    return cert.public_bytes(serialization.Encoding.PEM)


# --- what a certificate says --------------------------------------------------------------


def same_public_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    """Whether `key` is the private half of `cert` (a pair half-written by a crash is not)."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `cert`: a CA made anew leaves the old leaves unsigned by it."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    """Whether `cert` may sign certificates (basicConstraints CA:TRUE)."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def san_strings(cert: x509.Certificate) -> list[str]:
    """The certificate's subject alternative names, spelled as `san_string` does."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [san_string(name) for name in sans]


def san_string(name: x509.GeneralName) -> str:
    """OpenSSL's spelling (`DNS:localhost`, `IP:::1`), the one users see in `openssl x509`."""
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    return str(name.value)


def sha256_fingerprint(cert: x509.Certificate) -> str:
    """As `openssl x509 -fingerprint -sha256` prints it, so users can compare the two."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def day(moment: datetime) -> str:
    """A certificate date as messages show it: the day is what a user acts on."""
    return moment.strftime("%Y-%m-%d")


def copy_pair(source_root: Path, target_root: Path, cert_name: str, key_name: str) -> bool:
    """Give another node a pair the primary holds (a certificate and its key, each with its
    mode) when its copy differs by content or mode; True when anything was written."""
    written = [
        copy_if_changed(source_root / name, target_root / name, mode=mode)
        for name, mode in ((cert_name, CERT_MODE), (key_name, KEY_MODE))
    ]
    return any(written)
