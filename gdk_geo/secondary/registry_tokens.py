"""The Geo worker's registry tokens: minted with the shared signing key, no password.

GitLab's secondary signs its own short-lived JWTs with the key pair every site shares
(`pull_access_token` for the primary, `full_access_token` for its own registry). The
worker does the same: pull and the catalog on the primary, pull, push and delete on the
secondary, each token naming the repositories of one request (`registry/auth.py`).
"""

from __future__ import annotations

from collections.abc import Iterable

from gdk_geo.node.settings import TokenAuthSettings
from gdk_geo.node.token_auth import minter_for
from gdk_geo.registry.auth import MintedTokens
from gdk_geo.registry.tokens import Access, MintedToken

WORKER_SUBJECT = "gitlab-geo-secondary"
PRIMARY_ACTIONS = frozenset({"pull"})
SECONDARY_ACTIONS = frozenset({"pull", "push", "delete"})


def worker_tokens(auth: TokenAuthSettings) -> tuple[MintedTokens | None, MintedTokens | None]:
    """(for the primary registry, for the secondary's), or (None, None) when auth is off."""
    if not auth.enabled:
        return None, None
    minter = minter_for(auth)

    def mint(access: Iterable[Access]) -> MintedToken:
        return minter.mint(WORKER_SUBJECT, access)

    return (
        MintedTokens(mint, allowed=PRIMARY_ACTIONS, catalog=True),
        MintedTokens(mint, allowed=SECONDARY_ACTIONS, catalog=True),
    )
