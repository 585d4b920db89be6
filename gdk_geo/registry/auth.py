"""Answers `WWW-Authenticate` challenges: Basic with credentials, Bearer with a token."""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable

from yarl import URL

from gdk_geo.registry.replies import Reply, with_query


class RegistryAuth:
    """Answers `WWW-Authenticate` challenges: Basic with the credentials, Bearer with a token.

    Tokens are cached per repository (the scope a registry asks for is per repository), and
    fetched again when a cached one is refused (expired). Our local registries need no auth;
    GitLab's use Bearer tokens from `/jwt/auth`, which this covers.
    """

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self._basic = _basic_header(username, password or "") if username else None
        self._tokens: dict[str, str] = {}
        self._use_basic = False

    def header(self, repository: str) -> dict[str, str]:
        """The `Authorization` header to send for `repository`, if we have one."""
        if repository in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[repository]}"}
        if self._use_basic and self._basic is not None:
            return {"Authorization": self._basic}
        return {}

    async def answer(self, challenge: str, repository: str, fetch: TokenFetch) -> bool:
        """Learn how to answer `challenge`; True when the request is worth sending again.

        `fetch` GETs a token endpoint (an absolute URL, with the Basic credentials if any).
        """
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic" and self._basic is not None:
            self._use_basic = True
            return True
        if scheme == "bearer" and "realm" in params:
            query = {k: v for k, v in params.items() if k in ("service", "scope")}
            url = with_query(URL(params["realm"]), **query)
            headers = {"Authorization": self._basic} if self._basic is not None else {}
            token = _token_from(await fetch(url, headers))
            if token is None:
                return False
            self._tokens[repository] = token
            return True
        return False


TokenFetch = Callable[[URL, dict[str, str]], Awaitable[Reply]]


def _token_from(reply: Reply) -> str | None:
    """The token of a token endpoint's answer (`token`, or OAuth2's `access_token`)."""
    if reply.status != 200:
        return None
    try:
        body = reply.json()
    except ValueError:
        return None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    return token if isinstance(token, str) and token else None


def _basic_header(username: str, password: str) -> str:
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {credentials}"


def repository_of(path: str) -> str:
    """The repository part of a `/v2/<name>/...` path ("" for `/v2/` and the catalog)."""
    match = re.match(r"/v2/(.+?)/(?:tags|manifests|blobs)/", path)
    return match.group(1) if match else ""


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params
