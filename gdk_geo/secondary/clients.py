"""The secondary's registry clients: the primary registry and its own, verified over TLS.

What the worker, `invoke geo.sync` and `invoke geo.verify` open, so all three size the
pools and pick the CA file the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.registry import http
from gdk_geo.registry.client import RegistryClient
from gdk_geo.secondary.registry_tokens import worker_tokens


def ca_file_for(url: str, ca_file: Path) -> Path | None:
    """The CA file to verify `url` with: only https needs one, and then it must exist.

    Verification is never turned off; plain http (tests, a registry without TLS) has
    nothing to verify.
    """
    needed = http.ca_for(url, ca_file)
    if needed is not None and not needed.is_file():
        raise GdkGeoError(
            f"{ca_file} does not exist, so {url} cannot be verified",
            fix="run `invoke geo.setup` (it creates the CA and copies it to every secondary)",
        )
    return needed


@asynccontextmanager
async def registry_clients(
    settings: SecondaryWorkerSettings,
) -> AsyncIterator[tuple[RegistryClient, RegistryClient]]:
    """(primary, secondary) registry clients with pools sized for the configured concurrency.

    Two connections per repository in flight, between 8 and 16: a sync is bound by CPU (the
    client's and both registries'), so wider pools only add TLS handshakes (bench/RESULTS.md).
    """
    pool = min(16, max(8, settings.max_concurrent_repositories * 2))
    primary_tokens, secondary_tokens = worker_tokens(settings.auth)  # none with auth off
    source = RegistryClient(
        settings.primary_api_url,
        ca_file=ca_file_for(settings.primary_api_url, settings.ca_file),
        max_connections=pool,
        tokens=primary_tokens,
    )
    target = RegistryClient(
        settings.registry_api_url,
        ca_file=ca_file_for(settings.registry_api_url, settings.ca_file),
        max_connections=pool,
        tokens=secondary_tokens,
    )
    async with source, target:
        yield source, target
