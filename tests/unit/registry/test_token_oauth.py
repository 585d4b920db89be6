"""`POST /jwt/auth` in-process: the OAuth2 form of the token protocol, and refresh tokens.

The forms below are byte for byte what the clients send: containerd's
`remotes/docker/auth.FetchTokenWithOAuth` (Go's `url.Values.Encode`, keys sorted, `client_id`
`containerd-client`, `Content-Type: application/x-www-form-urlencoded; charset=utf-8`) and
Docker's token handler once it holds a refresh token (`PostForm`, `client_id=docker`).
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from realm_client import PASSWORD, SERVICE, AsgiClient, access_of, realm_client

from gdk_geo.registry.token_service import SECONDARY_POLICY

CONTAINERD = {
    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    "User-Agent": "containerd/1.6.20~ds1",
}
DOCKER = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "docker/20.10.24"}


def _go_form(**fields: str) -> str:
    """What Go's `url.Values.Encode` makes of the fields: sorted by key, spaces as `+`."""
    return urlencode(sorted(fields.items()))


def _containerd(client: AsgiClient, scope: str, **grant: str):
    """containerd's POST: the password grant with a username, else the refresh grant."""
    form = {"client_id": "containerd-client", "scope": scope, "service": SERVICE, **grant}
    return client.post("/jwt/auth", content=_go_form(**form), headers=CONTAINERD)


def _password(**extra: str) -> dict[str, str]:
    return {"grant_type": "password", "username": "root", "password": PASSWORD, **extra}


def _refresh(token: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": token, **extra}


def test_containerds_password_grant_gets_a_token(signing_key, primary) -> None:
    response = _containerd(primary, "repository:a:pull repository:b:pull,push", **_password())
    assert access_of(signing_key, response) == [
        {"type": "repository", "name": "a", "actions": ["pull"]},
        {"type": "repository", "name": "b", "actions": ["pull", "push"]},
    ]
    body = response.json()
    assert body["scope"] == "repository:a:pull repository:b:pull,push"
    assert "refresh_token" not in body  # only with access_type=offline


def test_the_secondary_grants_a_post_for_push_pull_only(signing_key, secondary) -> None:
    """Issue #25.6 in the POST form: `ctr push` to a secondary got a 403 from the realm
    ("failed to fetch oauth token: unexpected status: 403"); now the registry says no."""
    response = _containerd(secondary, "repository:a:pull,push", **_password())
    assert access_of(signing_key, response) == [
        {"type": "repository", "name": "a", "actions": ["pull"]}
    ]
    assert response.json()["scope"] == "repository:a:pull"


def test_scopes_may_also_come_as_repeated_fields(signing_key, primary) -> None:
    form = [("scope", "repository:a:pull"), ("scope", "repository:b:push")]
    form += [("client_id", "x"), ("service", SERVICE), *_password().items()]
    response = primary.post("/jwt/auth", content=urlencode(form), headers=DOCKER)
    assert [e["name"] for e in access_of(signing_key, response)] == ["a", "b"]


def test_access_type_offline_gives_a_refresh_token_that_gets_tokens(signing_key, primary) -> None:
    offline = _containerd(primary, "", **_password(access_type="offline"))
    refresh = offline.json()["refresh_token"]
    again = _containerd(primary, "repository:a:pull,push", **_refresh(refresh))
    assert access_of(signing_key, again) == [
        {"type": "repository", "name": "a", "actions": ["pull", "push"]}
    ]
    # The spec: a refresh grant with access_type=offline gets the same refresh token back.
    same = _containerd(primary, "", **_refresh(refresh, access_type="offline"))
    assert same.json()["refresh_token"] == refresh


def test_dockers_refresh_token_post_after_docker_login(signing_key, primary) -> None:
    """`docker login` asks with GET and offline_token=true, keeps the refresh token, and
    every later pull or push posts it (an empty scope for the login check)."""
    login = primary.get(
        "/jwt/auth",
        params={
            "account": "root",
            "client_id": "docker",
            "offline_token": "true",
            "service": SERVICE,
        },
        auth=("root", PASSWORD),
    )
    refresh = login.json()["refresh_token"]
    for scope in ("", "repository:group/app:pull,push"):
        form = {
            "client_id": "docker",
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "scope": scope,
            "service": SERVICE,
        }
        response = primary.post("/jwt/auth", content=_go_form(**form), headers=DOCKER)
        assert response.status_code == 200, response.text


def test_a_changed_password_revokes_every_refresh_token(signing_key) -> None:
    before = realm_client(signing_key, password=PASSWORD)
    refresh = _containerd(before, "", **_password(access_type="offline")).json()["refresh_token"]
    after = realm_client(signing_key, password="a-new-password-9876543210")
    refused = _containerd(after, "repository:a:pull", **_refresh(refresh))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_grant"
    assert "invoke geo.login" in refused.json()["errors"][0]["message"]
    # the same password (a restart, the other node) still takes it
    assert _containerd(before, "repository:a:pull", **_refresh(refresh)).status_code == 200
    again = realm_client(signing_key, SECONDARY_POLICY, password=PASSWORD)
    assert _containerd(again, "repository:a:pull", **_refresh(refresh)).status_code == 200


def test_a_refresh_token_is_bound_to_the_signing_key_and_the_service(signing_key) -> None:
    refresh = _containerd(realm_client(signing_key), "", **_password(access_type="offline"))
    token = refresh.json()["refresh_token"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _containerd(realm_client(stranger), "", **_refresh(token)).status_code == 401
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == SERVICE and claims["sub"] == "root" and "exp" not in claims
    forged = jwt.encode({**claims, "sub": "admin"}, "a-guessed-key-" * 4, algorithm="HS256")
    assert _containerd(realm_client(signing_key), "", **_refresh(forged)).status_code == 401


@pytest.mark.parametrize(
    ("grant", "status", "error"),
    [
        (_password(password="wrong-password-0123456789"), 401, "invalid_grant"),
        (_password(username="admin"), 401, "invalid_grant"),
        (_refresh("not-a-refresh-token"), 401, "invalid_grant"),
        (_refresh("x" * 5000), 401, "invalid_grant"),
        ({"grant_type": "password", "username": "root"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, 400, "unsupported_grant_type"),
        ({"username": "root", "password": PASSWORD}, 400, "invalid_request"),
    ],
)
def test_refused_grants(primary, grant: dict[str, str], status: int, error: str) -> None:
    response = _containerd(primary, "repository:a:pull", **grant)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert "invoke geo.login" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ("client_id=x&" + _go_form(service=SERVICE, **_password()), {}, 400),  # no type
        (_go_form(service=SERVICE, **_password()), CONTAINERD, 400),  # no client_id
        (_go_form(client_id="x", **_password()), CONTAINERD, 400),  # no service
        (_go_form(client_id="x", service="other", **_password()), CONTAINERD, 400),
        (_go_form(client_id="x", service=SERVICE, **_password()) + "&client_id=y", DOCKER, 400),
        (
            _go_form(client_id="x", service=SERVICE, scope="repository:A:pull", **_password()),
            DOCKER,
            400,
        ),
        (b"client_id=x&service=\xff", CONTAINERD, 400),
        ("&".join(["a=b"] * 100), CONTAINERD, 400),
        ("client_id=x&padding=" + "x" * 20000, CONTAINERD, 413),
    ],
)
def test_malformed_forms_are_4xx(primary, body, headers: dict[str, str], status: int) -> None:
    response = primary.post("/jwt/auth", content=body, headers=headers)
    assert response.status_code == status, response.text


def test_no_password_or_refresh_token_in_the_log(primary, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    offline = _containerd(primary, "repository:a:pull", **_password(access_type="offline"))
    refresh = offline.json()["refresh_token"]
    _containerd(primary, "", **_refresh(refresh + "x"))
    assert "token for root: repository:a:pull" in caplog.text
    for secret in (PASSWORD, refresh, offline.json()["access_token"]):
        assert secret not in caplog.text
