"""`GET /jwt/auth` in-process: credentials, grants under each node's policy, hostile input.

The real registries' verdict on these tokens is tested against running nodes in
test_registry_auth.py; here the service's own answers are checked over ASGI.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp

from gdk_geo.registry.token_service import PRIMARY_POLICY, SECONDARY_POLICY, TokenService
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

    def get(self, path: str, **options: Any) -> httpx.Response:
        async def one() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
                return await client.get(path, **options)

        return asyncio.run(one())


def _client(signing_key, policy=PRIMARY_POLICY) -> AsgiClient:
    key = signing_key
    service = TokenService(Minter(key, lifetime=300), "root", PASSWORD, SERVICE, policy)
    return AsgiClient(Starlette(routes=[service.route()]))


@pytest.fixture
def primary(signing_key) -> AsgiClient:
    return _client(signing_key)


@pytest.fixture
def secondary(signing_key) -> AsgiClient:
    return _client(signing_key, SECONDARY_POLICY)


def _ask(client: AsgiClient, *scopes: str, auth=("root", PASSWORD), **params):
    query = [("service", SERVICE), *(("scope", s) for s in scopes), *params.items()]
    return client.get("/jwt/auth", params=query, auth=auth)


def _access(signing_key, response) -> list[dict]:
    assert response.status_code == 200, response.text
    key = signing_key
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300 and body["issued_at"].endswith("Z")
    claims = jwt.decode(body["token"], key.public_key(), algorithms=["RS256"], audience=SERVICE)
    return claims["access"]


def test_the_primary_grants_the_user_what_was_asked(signing_key, primary) -> None:
    response = _ask(primary, "repository:group/app:pull,push", "registry:catalog:*")
    assert _access(signing_key, response) == [
        {"type": "repository", "name": "group/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


def test_several_scopes_in_one_parameter_are_each_granted(signing_key, primary) -> None:
    response = _ask(primary, "repository:a:pull repository:b:delete")
    assert [(a["name"], a["actions"]) for a in _access(signing_key, response)] == [
        ("a", ["pull"]),
        ("b", ["delete"]),
    ]


def test_never_more_than_asked(signing_key, primary) -> None:
    assert _access(signing_key, _ask(primary, "repository:a:pull")) == [
        {"type": "repository", "name": "a", "actions": ["pull"]}
    ]
    assert _access(signing_key, _ask(primary)) == []  # docker login asks for nothing


def test_docker_login_parameters_are_accepted(signing_key, primary) -> None:
    response = _ask(primary, account="root", offline_token="true", client_id="docker")
    assert _access(signing_key, response) == []


def test_the_secondary_lets_users_pull_only(signing_key, secondary) -> None:
    assert _access(signing_key, _ask(secondary, "repository:a:pull", "registry:catalog:*")) == [
        {"type": "repository", "name": "a", "actions": ["pull"]}
    ]


@pytest.mark.parametrize(
    "scope", ["repository:a:pull,push", "repository:a:delete", "repository:a:*"]
)
def test_a_write_to_the_secondary_is_denied(secondary, scope: str) -> None:
    response = _ask(secondary, scope)
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"


def test_anonymous_is_granted_nothing(signing_key, primary) -> None:
    assert _access(signing_key, _ask(primary, "repository:a:pull,push", auth=None)) == []


@pytest.mark.parametrize(
    "auth", [("root", "wrong-password-0123456789"), ("admin", PASSWORD), ("", ""), ("root", "")]
)
def test_bad_credentials_are_401_with_a_basic_challenge(primary, auth) -> None:
    response = _ask(primary, "repository:a:pull", auth=auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer abc",
        "Basic " + "A" * 4096,
        "Basic " + base64.b64encode(b"root:" + PASSWORD.encode() + b"\xff").decode(),
    ],
)
def test_malformed_basic_headers_are_401(primary, header: str) -> None:
    response = primary.get(
        "/jwt/auth", params={"service": SERVICE}, headers={"Authorization": header}
    )
    assert response.status_code == 401


def test_the_account_must_be_the_authenticated_user(primary) -> None:
    assert _ask(primary, account="admin").status_code == 401


def test_the_service_must_match(primary) -> None:
    response = primary.get("/jwt/auth", params={"service": "other"}, auth=("root", PASSWORD))
    assert response.status_code == 400
    assert primary.get("/jwt/auth", auth=("root", PASSWORD)).status_code == 400


@pytest.mark.parametrize(
    "scopes",
    [
        ["repository:a/../b:pull"],
        ["repository:Group/App:pull"],
        ["repository:" + "x" * 10240 + ":pull"],
        ["repository:a:pull"] * 1000,
        ["repository:a:pull " * 40],
    ],
)
def test_hostile_scopes_are_refused_without_a_5xx(primary, scopes) -> None:
    response = _ask(primary, *scopes)
    assert 400 <= response.status_code < 500


def test_no_password_or_token_in_the_log(signing_key, primary, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    good = _ask(primary, "repository:a:pull").json()["token"]
    _ask(primary, "repository:a:pull", auth=("root", "wrong-password-0123456789"))
    assert "token for root: repository:a:pull" in caplog.text
    for secret in (PASSWORD, good, "wrong-password-0123456789"):
        assert secret not in caplog.text
