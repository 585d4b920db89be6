"""The Registry HTTP API v2 as the Geo services speak it.

`reference` (the grammar, media types and API paths) → `errors` → `manifest` (the manifest
model, pure parsing) → `replies` (whole answers and error bodies) → `auth` (challenges, and
tokens `tokens` mints) → `transport` (the pool, retries with `backoff`, over `http`'s
clients) → `blobs` (blob requests, bytes checked as they stream) → `client` (the API) →
`copy` (a blob from registry to registry). Each imports only modules before it;
`token_service` (`/jwt/auth`) builds on `tokens` alone. Nothing here imports the rest of
gdk_geo but `gdk_geo.errors`: both services and the CLI build on it (`http` and `backoff`
serve them too).
"""

# The submodules code outside the package may import from (`from gdk_geo.registry import
# client`, `from gdk_geo.registry.client import RegistryClient`), and only their public
# names. Named, not imported: a service or CLI command loads only what it uses.
# `replies` is the client's own.
__all__ = [
    "auth",
    "backoff",
    "blobs",
    "client",
    "copy",
    "errors",
    "http",
    "manifest",
    "realm_http",
    "reference",
    "token_service",
    "tokens",
    "transport",
]
