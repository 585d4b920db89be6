"""`GET /jwt/auth`: the Docker token protocol, as GitLab's JwtController answers it.

Docker, containerd and skopeo ask the realm a registry advertises for a token: Basic
credentials (or none), `service`, any number of `scope` parameters, and from `docker login`
also `account`, `offline_token` and `client_id`. The answer is `{token, access_token,
expires_in, issued_at}`; the token grants what was asked and allowed, never more.

The policy is GitLab's for its two kinds of site: on the primary the user may pull, push,
delete and list the catalog; a secondary is read-only, so users (root too) may only pull
and a request to write is refused with `DENIED`. Only the Geo worker writes to the
secondary, with tokens it mints itself (`secondary/registry_tokens.py`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gdk_geo.registry.tokens import Access, BadScope, Minter, parse_scope

logger = logging.getLogger(__name__)

MAX_QUERY = 8192  # bytes of query string; a real client's is a few hundred
MAX_SCOPES = 32  # one pull or push asks for two or three
MAX_AUTHORIZATION = 1024
BASIC_REALM = 'Basic realm="GitLab"'


@dataclass(frozen=True)
class Policy:
    """What an authenticated user may be granted on this node."""

    repository_actions: frozenset[str]
    catalog: bool
    read_only: bool  # a request to push or delete is refused outright (DENIED)


PRIMARY_POLICY = Policy(frozenset({"pull", "push", "delete"}), catalog=True, read_only=False)
SECONDARY_POLICY = Policy(frozenset({"pull"}), catalog=False, read_only=True)


class TokenService:
    """Checks the user's credentials and grants tokens under a `Policy`."""

    def __init__(
        self, minter: Minter, username: str, password: str, service: str, policy: Policy
    ) -> None:
        self._minter = minter
        self._username = username.encode()
        self._password = password.encode()
        self._service = service
        self._policy = policy

    def __repr__(self) -> str:
        return f"TokenService(service={self._service!r})"

    def route(self) -> Route:
        return Route("/jwt/auth", self.jwt_auth, methods=["GET"])

    async def jwt_auth(self, request: Request) -> Response:
        """One token request; every refusal is a 4xx whose body names no secret."""
        if len(request.url.query.encode()) > MAX_QUERY:
            return _error(400, "INVALID_REQUEST", "the query string is too long")
        if request.query_params.get("service") != self._service:
            return _error(400, "INVALID_REQUEST", f"service must be {self._service}")
        user, problem = self._authenticate(request.headers.get("authorization"))
        if problem:
            return _unauthorized(problem)
        account = request.query_params.get("account")
        if account is not None and account != (user or ""):
            return _unauthorized("account does not match the credentials")
        try:
            asked = _requested(request.query_params.getlist("scope"))
        except BadScope as exc:
            return _error(400, "INVALID_REQUEST", str(exc))
        if self._policy.read_only and any(_writes(entry) for entry in asked):
            return _error(403, "DENIED", "requested access to the resource is denied")
        granted = self._grant(asked) if user else []
        minted = self._minter.mint(user or "", granted)
        logger.info(
            "token for %s: %s", user or "anonymous", " ".join(a.scope() for a in granted) or "-"
        )
        issued = datetime.fromtimestamp(minted.issued_at, UTC).isoformat(timespec="seconds")
        body = {
            "token": minted.token,
            "access_token": minted.token,
            "expires_in": minted.expires_in,
            "issued_at": issued.replace("+00:00", "Z"),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def _authenticate(self, header: str | None) -> tuple[str | None, str | None]:
        """(user, None) for good Basic credentials, (None, None) for none, else a problem."""
        if header is None:
            return None, None
        if len(header) > MAX_AUTHORIZATION:
            return None, "the Authorization header is too long"
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None, "only Basic credentials are accepted here"
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None, "malformed Basic credentials"
        username, colon, password = decoded.partition(b":")
        if not colon:
            return None, "malformed Basic credentials"
        # Both compared in constant time, so a wrong user is as slow as a wrong password.
        user_ok = hmac.compare_digest(username, self._username)
        password_ok = hmac.compare_digest(password, self._password)
        if not (user_ok and password_ok and self._password):
            return None, "invalid credentials"
        return self._username.decode(), None

    def _grant(self, asked: list[Access]) -> list[Access]:
        """The intersection of what was asked and what the policy allows."""
        granted: list[Access] = []
        for entry in asked:
            if entry.type == "registry":
                if self._policy.catalog:
                    granted.append(entry)
                continue
            actions = tuple(a for a in entry.actions if a in self._policy.repository_actions)
            if actions:
                granted.append(Access(entry.type, entry.name, actions))
        return granted


def _requested(values: list[str]) -> list[Access]:
    """Every scope asked for; a parameter may hold several, separated by spaces."""
    scopes = [scope for value in values for scope in value.split(" ") if scope]
    if len(scopes) > MAX_SCOPES:
        raise BadScope(f"at most {MAX_SCOPES} scopes per request")
    return [parse_scope(scope) for scope in scopes]


def _writes(entry: Access) -> bool:
    return entry.type == "repository" and bool({"push", "delete"} & set(entry.actions))


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status)


def _unauthorized(message: str) -> JSONResponse:
    response = _error(401, "UNAUTHORIZED", message)
    response.headers["WWW-Authenticate"] = BASIC_REALM
    return response
