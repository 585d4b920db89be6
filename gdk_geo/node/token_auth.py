"""A node's registry token auth, built from its `gitlab.yml`: the minter and `/jwt/auth`.

Both Geo services read the same settings (`node_settings.TokenAuthSettings`); only the
policy differs (the primary grants writes, the secondary is read-only for users). A shared
leaf like `node_settings.py`: it imports only that, the registry package and `errors.py`,
so the services and the CLI can both use it.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import Route

from gdk_geo.node.settings import TokenAuthSettings
from gdk_geo.registry.auth import MintedTokens
from gdk_geo.registry.token_service import Policy, TokenService
from gdk_geo.registry.tokens import Access, MintedToken, Minter, load_signing_files

TOOL_SUBJECT = "gdk-geo"
ALL_ACTIONS = frozenset({"pull", "push", "delete"})
PULL = frozenset({"pull"})


def minter_for(auth: TokenAuthSettings) -> Minter:
    """A minter signing with the node's `localhost.key` for its issuer and service.

    The key is not validated again here: reconfiguring, before any service starts, checks
    the pair and re-makes an inconsistent key, and each service start and tool run paid
    that check's 55 ms once per minter (twice in the worker) with auth on, and not with
    it off. A key broken since would sign tokens the registries refuse, which `geo.check`
    reports.
    """
    key, _certificate = load_signing_files(auth.key_path, auth.certificate_path, validate_key=False)
    return Minter(
        key,
        lifetime=auth.token_expire_delay,
        issuer=auth.issuer,
        audience=auth.service,
    )


def token_routes(auth: TokenAuthSettings, policy: Policy) -> list[Route]:
    """`[/jwt/auth]` (GET, POST) when auth is on, else none (anonymous registries ask nothing)."""
    if not auth.enabled:
        return []
    service = TokenService(minter_for(auth), auth.username, auth.password, auth.service, policy)
    return [service.route()]


def tool_tokens(auth: TokenAuthSettings, actions: frozenset[str]) -> MintedTokens | None:
    """Request-scoped tokens for gdk-geo's own tools (`geo.check`'s probe), minted with the
    node's key like the worker's; None when auth is off (the registry asks for nothing)."""
    if not auth.enabled:
        return None
    minter = minter_for(auth)

    def mint(access: Iterable[Access]) -> MintedToken:
        return minter.mint(TOOL_SUBJECT, access)

    return MintedTokens(mint, allowed=actions, catalog=True)
