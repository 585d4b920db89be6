"""Refresh tokens (Docker's "identity tokens"): a login that outlives no password change.

Asked for with `offline_token=true` (GET, which `docker login` sends) or
`access_type=offline` (POST), a refresh token lets a client get access tokens later
without the password: Docker then keeps it in its credential store instead of the
password, and sends it back with the OAuth2 `grant_type=refresh_token`.

The realm keeps no table of them. Each is a JWT signed with HMAC-SHA256 under a key derived
from the node's signing key and the registry password: changing the password (or the
signing pair) changes the key, and every refresh token issued before is refused from the
next start of the service on, with no list to revoke. The signing key is in the
derivation so that a leaked refresh token cannot be used to guess the password offline.
Every node has the same key and password, so a refresh token is good at every node's
realm, as one GitLab login is. A token names its user and the service it is for (the
spec: a refresh token is good for one service) and carries no expiry, as Docker keeps it
until the next `docker login`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import jwt

KIND = "refresh"
MAX_REFRESH_TOKEN = 1024  # characters; ours are about 250


class RefreshTokens:
    """Issues and checks the refresh tokens of one user, under the current password."""

    def __init__(
        self,
        signing_secret: bytes,
        username: str,
        password: str,
        service: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        fingerprint = hashlib.sha256(password.encode()).digest()
        self._key = hmac.new(signing_secret, b"refresh-token\0" + fingerprint, "sha256").digest()
        self._username = username
        self._service = service
        self._clock = clock

    def __repr__(self) -> str:
        return f"RefreshTokens(username={self._username!r}, service={self._service!r})"

    def issue(self) -> str:
        """A new refresh token for the user."""
        claims = {
            "typ": KIND,
            "sub": self._username,
            "aud": self._service,
            "iat": int(self._clock()),
            "jti": secrets.token_hex(16),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def valid(self, token: str) -> bool:
        """Whether `token` was issued under this password and signing key, for this user and
        service (a token from before a password change is not)."""
        if len(token) > MAX_REFRESH_TOKEN:
            return False
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=self._service,
                # iat is a record, not a check: the nodes' clocks may differ
                options={"require": ["sub", "aud", "typ"], "verify_iat": False},
            )
        except jwt.PyJWTError:
            return False
        return claims.get("typ") == KIND and hmac.compare_digest(
            str(claims.get("sub")).encode(), self._username.encode()
        )
