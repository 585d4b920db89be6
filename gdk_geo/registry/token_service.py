"""`/jwt/auth`: the Docker token protocol, as GitLab's JwtController answers it, and more.

Docker, containerd and skopeo ask the realm a registry advertises for a token: `GET` with
Basic credentials (the token spec), or `POST` with an OAuth2 form (containerd tries it
first; Docker uses it once it holds a refresh token). `token_requests` reads both into one
`TokenRequest`; here the credentials are checked and the token granted. The answer is
`{token, access_token, expires_in, issued_at}`, plus `scope` to a `POST`, plus
`refresh_token` when one was asked for (`refresh_tokens`).

The grant is GitLab's: the intersection of what was asked and what the node's `Policy`
allows; what is not allowed is dropped (and logged), never refused, and the registry then
refuses the request the token does not cover. On the primary the user may pull, push,
delete and list the catalog; a secondary is read-only, so users (root too) get pull only
there: `docker push` to it fails at once with the registry's `denied`, where a 403 from the
realm made Docker retry for most of a minute. Only the Geo worker writes to the secondary,
with tokens it mints itself (`secondary/registry_tokens.py`).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gdk_geo.registry import token_requests
from gdk_geo.registry.refresh_tokens import RefreshTokens
from gdk_geo.registry.token_requests import Refusal, TokenRequest, invalid, unauthorized
from gdk_geo.registry.tokens import Access, MintedToken, Minter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """What an authenticated user may be granted on this node."""

    repository_actions: frozenset[str]
    catalog: bool
    node: str  # for the log line of what was dropped


PRIMARY_POLICY = Policy(frozenset({"pull", "push", "delete"}), catalog=True, node="the primary")
SECONDARY_POLICY = Policy(frozenset({"pull"}), catalog=False, node="a read-only secondary")


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
        self._refresh = RefreshTokens(
            minter.derived_secret(b"gdk-geo realm"), username, password, service
        )

    def __repr__(self) -> str:
        return f"TokenService(service={self._service!r})"

    def route(self) -> Route:
        """`/jwt/auth` for `GET` and `POST` (any other method is a 405)."""
        return Route("/jwt/auth", self.jwt_auth, methods=["GET", "POST"])

    async def jwt_auth(self, request: Request) -> Response:
        """One token request, in either form; every refusal is a 4xx naming no secret."""
        form = request.method == "POST"
        try:
            if form:
                asked = await token_requests.from_form(request)
            else:
                asked = token_requests.from_query(request)
            return self._answer(asked)
        except Refusal as refusal:
            return _refused(refusal, form=form)

    def _answer(self, asked: TokenRequest) -> Response:
        if asked.service != self._service:
            raise invalid(f"service must be {self._service}")
        user = self._authenticate(asked)
        if asked.account is not None and asked.account != (user or ""):
            raise unauthorized("account does not match the credentials")
        if user is None and asked.scopes:
            # Nothing is public here, so an anonymous scope would get a token the registry
            # refuses with a bare `denied`; this 401 tells the user how to log in instead.
            raise unauthorized("authentication required")
        granted = self._grant(asked.scopes) if user else []
        minted = self._minter.mint(user or "", granted)
        _log_grant(user, asked.scopes, granted, self._policy)
        refresh = self._refresh_token(asked) if user and asked.offline else None
        return JSONResponse(_reply(minted, granted, asked, refresh), headers=NO_STORE)

    def _authenticate(self, asked: TokenRequest) -> str | None:
        """The user the request's grant proves, None for an anonymous one; else a 401."""
        if asked.refresh_token is not None:
            if not (self._password and self._refresh.valid(asked.refresh_token)):
                raise unauthorized(
                    "the refresh token is not valid here (a changed password revokes it)"
                )
            return self._username.decode()
        if asked.username is None or asked.password is None:
            return None
        # Both compared in constant time, so a wrong user is as slow as a wrong password.
        user_ok = hmac.compare_digest(asked.username, self._username)
        password_ok = hmac.compare_digest(asked.password, self._password)
        if not (user_ok and password_ok and self._password):
            raise unauthorized("invalid username or password")
        return self._username.decode()

    def _refresh_token(self, asked: TokenRequest) -> str:
        """A refresh grant gets its own token back (the OAuth2 spec), any other a new one."""
        return asked.refresh_token or self._refresh.issue()

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


NO_STORE = {"Cache-Control": "no-store"}


def _reply(
    minted: MintedToken, granted: list[Access], asked: TokenRequest, refresh: str | None
) -> dict[str, object]:
    """The answer's fields: both specs' names for the token; the OAuth2 form's `scope`
    (required there) is what was granted, which may be less than what was asked."""
    issued = datetime.fromtimestamp(minted.issued_at, UTC).isoformat(timespec="seconds")
    body: dict[str, object] = {
        "token": minted.token,
        "access_token": minted.token,
        "expires_in": minted.expires_in,
        "issued_at": issued.replace("+00:00", "Z"),
    }
    if asked.form:
        body["scope"] = " ".join(entry.scope() for entry in granted)
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


def _log_grant(
    user: str | None, asked: list[Access], granted: list[Access], policy: Policy
) -> None:
    """One line per token: what it grants, and what was asked but dropped (GitLab logs
    "Denied container registry permissions"). Never the token itself."""
    line = " ".join(entry.scope() for entry in granted) or "-"
    dropped = _dropped(asked, granted)
    if dropped:
        line += f" (dropped, not allowed on {policy.node}: {' '.join(dropped)})"
    logger.info("token for %s: %s", user or "anonymous", line)


def _dropped(asked: list[Access], granted: list[Access]) -> list[str]:
    """Each scope asked for with the actions the grant left out, as `type:name:actions`."""
    kept = {(g.type, g.name): set(g.actions) for g in granted}
    dropped = []
    for entry in asked:
        missing = [a for a in entry.actions if a not in kept.get((entry.type, entry.name), ())]
        if missing:
            dropped.append(Access(entry.type, entry.name, tuple(missing)).scope())
    return dropped


def _refused(refusal: Refusal, *, form: bool) -> JSONResponse:
    """The refusal's reply, logged by its reason (which names no secret)."""
    logger.info("token request refused (%d): %s", refusal.status, refusal.message)
    return refusal.response(form=form)
