"""Refuse requests whose `Host` is not the worker's own: the admin page's DNS-rebinding guard.

On a loopback listener the admin page has no login: it trusts that only this host reaches
the port. A web page elsewhere can still make a browser send requests there through a
domain that it re-points at 127.0.0.1 (DNS rebinding); such requests carry that domain as
their `Host`. Accepting only the configured `hostname` (`gitlab.host`, the node's address)
and `listen_address`, with the port, stops them. Beyond loopback the page asks for a login
too (`gdk_geo.node.exposure`), and this check stays in front of it.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send


def allowed_hosts(hostname: str, listen_address: str, port: int) -> frozenset[str]:
    """The `Host` values the worker answers to: `name:port` for both names (IPv6 bracketed)."""
    names = {hostname.lower(), listen_address.lower()}
    return frozenset(f"[{name}]:{port}" if ":" in name else f"{name}:{port}" for name in names)


class HostCheck:
    """ASGI middleware: 403 for a request whose `Host` header is not one of `allowed`."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._host(scope) in self.allowed:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"message": "403 Forbidden: this Host is not the Geo worker's address"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _host(scope: Scope) -> str:
        for name, value in scope.get("headers", ()):
            if name == b"host":
                return value.decode("latin-1").lower()
        return ""
