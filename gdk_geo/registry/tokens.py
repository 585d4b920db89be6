"""Registry tokens: scopes, key IDs and RS256 JWTs that Distribution 2.x and 3.x accept.

A registry with `auth: token` verifies each request's Bearer JWT: signature, `iss` (the
configured issuer), `aud` (the configured service), `exp`/`nbf`, and that `access` covers
what the request needs (`repository:<name>:pull|push|delete`, `registry:catalog:*`).

How a registry finds the verifying key differs by major version:
- Distribution 2.x (Debian's 2.8, `registry:2`, GitLab's fork) uses `x5c` when the header
  has it (the chain must end in a certificate of `rootcertbundle`), otherwise `kid`, which
  must be the libtrust key ID of a key in the bundle;
- Distribution 3.x uses `x5c` the same way, otherwise `kid` as the RFC 7638 thumbprint.
Our tokens carry `x5c` (the signing certificate) so both families verify them, and `kid`
as the libtrust ID, which is what GitLab sends and what 2.x reads when `x5c` is absent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gdk_geo.errors import GdkGeoError

ISSUER = "gitlab-issuer"
SERVICE = "container_registry"
# Distribution's repository name grammar: lowercase components joined by one separator.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
MAX_REPOSITORY = 255
MAX_SCOPE = 512
REPOSITORY_ACTIONS = ("pull", "push", "delete")
Clock = Callable[[], float]


class BadScope(ValueError):
    """A scope parameter that is not `repository:<name>:<actions>` or `registry:catalog:*`."""


@dataclass(frozen=True)
class Access:
    """One entry of a token's `access` claim."""

    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict[str, object]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope(text: str) -> Access:
    """A scope as the token protocol writes it; anything else raises `BadScope`.

    Names are checked against the registry's grammar (no `..`, no uppercase), and
    unknown actions are dropped rather than passed on: a token never names an action
    we do not understand.
    """
    if len(text) > MAX_SCOPE:
        raise BadScope("scope is too long")
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if kind == "registry" and name == "catalog" and actions == "*":
        return Access("registry", "catalog", ("*",))
    if kind != "repository" or not name:
        raise BadScope("scope is neither repository:<name>:<actions> nor registry:catalog:*")
    if len(name) > MAX_REPOSITORY or not _REPOSITORY.fullmatch(name):
        raise BadScope("scope names an invalid repository")
    wanted = {a for a in actions.split(",") if a}
    if "*" in wanted:
        wanted |= set(REPOSITORY_ACTIONS)
    return Access("repository", name, tuple(a for a in REPOSITORY_ACTIONS if a in wanted))


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """libtrust's key ID: SHA-256 of the DER SubjectPublicKeyInfo, 240 bits, base32, 4-char
    groups joined by ':' (what Distribution 2.x matches `kid` against, and GitLab sends)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def jwk_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint of the RSA key (what Distribution 3.x matches `kid` against)."""
    numbers = public_key.public_numbers()
    members = {"e": _b64_uint(numbers.e), "kty": "RSA", "n": _b64_uint(numbers.n)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


@dataclass(frozen=True)
class MintedToken:
    """A signed token and its lifetime, as `/jwt/auth` answers it."""

    token: str
    issued_at: float
    expires_at: float

    def __repr__(self) -> str:  # a token is a credential: never in a log line
        return f"MintedToken(expires_at={self.expires_at:.0f})"

    @property
    def expires_in(self) -> int:
        return max(1, round(self.expires_at - self.issued_at))


class Minter:
    """Signs registry tokens with the node's `localhost.key` (RS256)."""

    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        certificate: x509.Certificate,
        *,
        lifetime: float,
        issuer: str = ISSUER,
        audience: str = SERVICE,
        clock: Clock = time.time,
        with_x5c: bool = True,
    ) -> None:
        self.lifetime = lifetime
        self.issuer = issuer
        self.audience = audience
        self._key = key
        self._clock = clock
        self._header: dict[str, object] = {"typ": "JWT", "kid": libtrust_key_id(key.public_key())}
        if with_x5c:
            der = certificate.public_bytes(serialization.Encoding.DER)
            self._header["x5c"] = [base64.b64encode(der).decode()]

    def __repr__(self) -> str:
        return f"Minter(issuer={self.issuer!r}, lifetime={self.lifetime})"

    def mint(self, subject: str, access: Iterable[Access]) -> MintedToken:
        """A token for `subject` granting exactly `access` (empty: only `GET /v2/`)."""
        now = int(self._clock())  # JWT times are whole seconds
        expires = now + max(1, round(self.lifetime))
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "exp": expires,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [entry.claim() for entry in access],
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers=self._header)
        return MintedToken(token, float(now), float(expires))


def load_signing_files(
    key_path: Path, cert_path: Path
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The RSA key and first certificate a node signs with; a bad file is a user error."""
    fix = (
        "run `invoke geo.reconfigure` (it re-makes the signing pair on the primary and copies "
        "it to the secondary)"
    )
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
    except FileNotFoundError as exc:
        raise GdkGeoError(
            f"{Path(exc.filename).name} does not exist", where=exc.filename, fix=fix
        ) from None
    except (ValueError, TypeError, UnsupportedAlgorithm, IndexError):
        raise GdkGeoError(
            f"{key_path.name} or {cert_path.name} is not a valid PEM file",
            where=str(key_path.parent),
            fix=fix,
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GdkGeoError(
            f"{key_path.name} is not an RSA key, so it cannot sign registry tokens",
            where=str(key_path),
            fix=fix,
        )
    return key, certificate


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64_uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))
