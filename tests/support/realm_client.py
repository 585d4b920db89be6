"""`/jwt/auth` in this process: a token service over ASGI, and how to read its tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
from starlette.applications import Starlette
from starlette.types import ASGIApp

from gdk_geo.registry.token_service import PRIMARY_POLICY, Policy, TokenService
from gdk_geo.registry.tokens import Minter

PASSWORD = "a-registry-password-0123456789"
SERVICE = "container_registry"


class AsgiClient:
    """Requests to an app in this process, through httpx's own ASGI transport.

    Starlette's TestClient over httpx is deprecated (it asks for a second HTTP library,
    httpx2); httpx's transport is what the project's other in-process tests use, and like
    TestClient it raises what the app raises.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def one() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
                return await client.request(method, path, **options)

        return asyncio.run(one())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)


def realm_client(signing_key, policy: Policy = PRIMARY_POLICY, password: str = PASSWORD):
    """A node's token service for user `root` with `password`, signing with `signing_key`."""
    service = TokenService(Minter(signing_key, lifetime=300), "root", password, SERVICE, policy)
    return AsgiClient(Starlette(routes=[service.route()]))


def access_of(signing_key, response: httpx.Response) -> list[dict]:
    """The `access` claim of the token in a 200 reply, checked as a registry would."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300 and body["issued_at"].endswith("Z")
    claims = jwt.decode(
        body["token"], signing_key.public_key(), algorithms=["RS256"], audience=SERVICE
    )
    return claims["access"]
