"""What a listener beyond loopback asks for: the rule both Geo services apply.

A service bound to a loopback address (127.0.0.0/8, ::1) is reached only from this host,
and answers its pages and metrics as it always has. Bound anywhere else (another address,
or the wildcard `0.0.0.0`/`::`, which takes every address), every API it serves requires a
credential: the node token (`Authorization: Bearer <geo.node_token>`) for the APIs the
nodes and the CLI call, the registry user's password (HTTP Basic) for the secondary's
admin page, which a person opens in a browser. `/-/health` stays open (the CLI's probe
reads it) and says no more than that the service is up; `/jwt/auth` authenticates itself.

Every comparison of a credential is constant-time (`hmac.compare_digest`), and an empty
expected value accepts nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

ADMIN_REALM = "gdk-geo admin"
BASIC_CHALLENGE = f'Basic realm="{ADMIN_REALM}"'
BEARER_CHALLENGE = 'Bearer realm="gdk-geo"'


def is_loopback(address: str) -> bool:
    """Whether `address` (an IP literal, as `gitlab.listen_address` holds) is a loopback
    address: 127.0.0.0/8 or ::1 (an IPv4-mapped 127.x too). The wildcards `0.0.0.0` and
    `::`, any other address and anything that is not an IP literal are not: a name could
    resolve anywhere, so it asks for credentials."""
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def _equal(given: str, expected: str) -> bool:
    """Constant-time equality of two header values; nothing equals an empty `expected`.
    Headers are decoded as latin-1, so encoding back gives the bytes that were sent."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("latin-1", errors="replace"), expected.encode())


def node_token_given(headers: Mapping[str, str], node_token: str) -> bool:
    """Whether the request carries the node token: `Authorization: Bearer <token>` (the
    scheme in any case) or GitLab's `PRIVATE-TOKEN` header."""
    header = headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return _equal(header[7:], node_token)
    given = headers.get("private-token")
    return given is not None and _equal(given, node_token)


@dataclass(frozen=True)
class Exposure:
    """One service's listener and the node token that opens it beyond loopback."""

    listen_address: str
    node_token: str = field(repr=False)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.listen_address)

    def admits(self, headers: Mapping[str, str]) -> bool:
        """Whether a token-guarded route answers this request: anyone on a loopback
        listener (only this host reaches it), else only a holder of the node token."""
        return self.loopback or node_token_given(headers, self.node_token)


@dataclass(frozen=True)
class BasicLogin:
    """HTTP Basic credentials a page asks a person for (the registry user on the admin
    page). An empty password accepts nobody."""

    username: str
    password: str = field(repr=False)

    def accepts(self, headers: Mapping[str, str]) -> bool:
        header = headers.get("authorization", "")
        if header[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, colon, password = decoded.partition(":")
        # Both compared, always: which half was wrong takes the same time.
        user_ok = _equal_text(username, self.username)
        password_ok = _equal_text(password, self.password)
        return bool(colon) and user_ok and password_ok and bool(self.password)


def _equal_text(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def admin_login(listen_address: str, username: str, password: str) -> BasicLogin | None:
    """The login the admin page asks for on this listener: none on loopback (as before),
    the registry user's beyond it."""
    return None if is_loopback(listen_address) else BasicLogin(username, password)
