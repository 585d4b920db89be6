"""Registry credentials: challenges answered (Basic, Bearer) or tokens we mint ourselves."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Awaitable, Callable, Iterable

from yarl import URL

from gdk_geo.registry.replies import Reply, with_query
from gdk_geo.registry.tokens import REPOSITORY_ACTIONS, Access, MintedToken


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


Mint = Callable[[Iterable[Access]], MintedToken]
CATALOG = Access("registry", "catalog", ("*",))
CACHE_LIMIT = 4096


def request_access(method: str, url: URL) -> tuple[Access, ...]:
    """What Distribution checks a request against (its `appendAccessRecords`).

    GET/HEAD pull, POST/PUT/PATCH pull and push, DELETE delete; a cross-repository mount
    (`POST …/blobs/uploads/?from=<source>`) also pulls from the source repository.
    """
    if url.path.rstrip("/") == "/v2/_catalog":
        return (CATALOG,)
    repository = repository_of(url.path)
    if not repository:
        return ()
    if method in ("GET", "HEAD"):
        actions: tuple[str, ...] = ("pull",)
    elif method == "DELETE":
        actions = ("delete",)
    else:
        actions = ("pull", "push")
    access = [Access("repository", repository, actions)]
    source = url.query.get("from")
    if method == "POST" and source and source != repository:
        access.append(Access("repository", source, ("pull",)))
    return tuple(access)


class MintedTokens:
    """Bearer tokens the Geo worker signs itself, as GitLab's `pull_access_token` does.

    A token covers the repositories one request names, each with every action `allowed`
    there (pull and the catalog for the primary, GitLab's `pull_access_token`; pull, push
    and delete for the secondary, its `full_access_token`), so that one token serves every
    request to a repository: signing one costs an RSA signature (about 1.5 ms), once per
    repository and side rather than once per kind of request. A repository is named only
    when the request needs an action allowed there. A token is reused until shortly
    before it expires: a quarter of its lifetime, at most 30 s. The registry checks a
    token when a request starts, so a blob stream that outlasts its token still completes.
    `forget` drops a token the registry refused, so the request is sent once more with a
    fresh one.
    """

    def __init__(
        self,
        mint: Mint,
        *,
        allowed: frozenset[str],
        catalog: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._mint = mint
        self._allowed = allowed
        self._actions = tuple(a for a in REPOSITORY_ACTIONS if a in allowed)
        self._catalog = catalog
        self._clock = clock
        self._cache: dict[tuple[str, ...], MintedToken] = {}

    def __repr__(self) -> str:
        return f"MintedTokens(allowed={sorted(self._allowed)}, catalog={self._catalog})"

    def header(self, method: str, url: URL) -> dict[str, str]:
        """`Authorization: Bearer …` for this request, minted or from the cache."""
        access = self._scoped(request_access(method, url))
        key = tuple(entry.scope() for entry in access)
        token = self._cache.get(key)
        if token is None or self._stale(token):
            token = self._mint(access)
            self._remember(key, token)
        return {"Authorization": f"Bearer {token.token}"}

    def forget(self, method: str, url: URL) -> None:
        """Drop the cached token for this request's scopes (the registry refused it)."""
        key = tuple(entry.scope() for entry in self._scoped(request_access(method, url)))
        self._cache.pop(key, None)

    def _scoped(self, access: Iterable[Access]) -> list[Access]:
        kept = []
        for entry in access:
            if entry.type == "registry":
                if self._catalog:
                    kept.append(entry)
                continue
            if self._allowed.intersection(entry.actions):
                kept.append(Access(entry.type, entry.name, self._actions))
        return kept

    def _stale(self, token: MintedToken) -> bool:
        margin = min(30.0, (token.expires_at - token.issued_at) / 4)
        return self._clock() >= token.expires_at - margin

    def _remember(self, key: tuple[str, ...], token: MintedToken) -> None:
        if len(self._cache) >= CACHE_LIMIT:
            self._cache = {k: v for k, v in self._cache.items() if not self._stale(v)}
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
        self._cache[key] = token
