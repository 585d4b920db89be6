"""Registry tokens: scopes, key IDs and RS256 JWTs that Distribution 2.x and 3.x accept.

A registry with `auth: token` verifies each request's Bearer JWT: signature, `iss` (the
configured issuer), `aud` (the configured service), `exp`/`nbf`, and that `access` covers
what the request needs (`repository:<name>:pull|push|delete`, `registry:catalog:*`).

How a registry finds the verifying key differs by major version:
- Distribution 2.x (Debian's 2.8, `registry:2`, GitLab's fork) uses `x5c` when the header
  has it (the chain must end in a certificate of `rootcertbundle`), otherwise `kid`, which
  must be the libtrust key ID of a key in the bundle;
- Distribution 3.x uses `x5c` the same way, otherwise `kid`, looked up among the bundle's
  keys by RFC 7638 thumbprint and among the keys of its `jwks` file by their own `kid`.
Our tokens carry only `kid`, the libtrust ID, as GitLab's do. 2.x finds it in the bundle;
for 3.x each node's registry config also names `localhost.jwks.json`, the same key under
that `kid` (`signing_jwk`; 2.x ignores the option). No `x5c`: a registry verifies the chain
on every request that carries one, which cost Distribution 2.8 about a third more CPU per
request (bench/RESULTS.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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
    """RFC 7638 thumbprint of the RSA key (what Distribution 3.x matches a bundle key by)."""
    canonical = json.dumps(_jwk_members(public_key), separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def signing_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The verifying key as a JWK under the `kid` our tokens carry (a 3.x registry's `jwks`)."""
    kid = libtrust_key_id(public_key)
    return {**_jwk_members(public_key), "kid": kid, "use": "sig", "alg": "RS256"}


def _jwk_members(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """An RSA key's required JWK members (RFC 7638 §3.2: the thumbprint's input)."""
    numbers = public_key.public_numbers()
    return {"e": _b64_uint(numbers.e), "kty": "RSA", "n": _b64_uint(numbers.n)}


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
        *,
        lifetime: float,
        issuer: str = ISSUER,
        audience: str = SERVICE,
        clock: Clock = time.time,
    ) -> None:
        self.lifetime = lifetime
        self.issuer = issuer
        self.audience = audience
        self._key = key
        self._clock = clock
        self._header = {"typ": "JWT", "kid": libtrust_key_id(key.public_key())}

    def __repr__(self) -> str:
        return f"Minter(issuer={self.issuer!r}, lifetime={self.lifetime})"

    def derived_secret(self, purpose: bytes) -> bytes:
        """A secret for `purpose` that only a holder of the signing key can compute: the
        realm keys its refresh tokens with it, so every node derives the same one."""
        der = self._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return hmac.new(der, purpose, "sha256").digest()

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
    key_path: Path, cert_path: Path, *, validate_key: bool = True
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The RSA key and first certificate a node signs with; a bad file is a user error.

    `validate_key=False` skips cryptography's RSA consistency check, about 55 ms a load
    (bench/RESULTS.md): for a key `gdk_geo.pki.signing` checked, with that check, on the run
    that started the caller (every `geo.setup` and `geo.restart` reconfigures first).
    """
    fix = (
        "run `invoke geo.reconfigure` (it re-makes the signing pair on the primary and copies "
        "it to every secondary)"
    )
    try:
        key = serialization.load_pem_private_key(
            key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=not validate_key
        )
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
