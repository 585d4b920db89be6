"""`GET /jwt/auth` in-process: credentials, grants under each node's policy, hostile input.

The real registries' verdict on these tokens is tested against running nodes in
test_registry_auth.py, the OAuth2 `POST` form in test_token_oauth.py; here the service's
own answers are checked over ASGI.
"""

from __future__ import annotations

import base64
import logging

import pytest
from realm_client import PASSWORD, SERVICE, AsgiClient, access_of


def _ask(client: AsgiClient, *scopes: str, auth=("root", PASSWORD), **params):
    query = [("service", SERVICE), *(("scope", s) for s in scopes), *params.items()]
    return client.get("/jwt/auth", params=query, auth=auth)


def _access(signing_key, response) -> list[dict]:
    return access_of(signing_key, response)


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


def test_offline_token_gives_a_refresh_token_as_the_spec_says(primary) -> None:
    """`docker login` asks with offline_token=true and then keeps the refresh token, not
    the password; without the parameter there is none."""
    assert _ask(primary, offline_token="true", client_id="docker").json()["refresh_token"]
    assert "refresh_token" not in _ask(primary, "repository:a:pull").json()
    assert "refresh_token" not in _ask(primary, offline_token="true", auth=None).json()


def test_the_secondary_lets_users_pull_only(signing_key, secondary) -> None:
    assert _access(signing_key, _ask(secondary, "repository:a:pull", "registry:catalog:*")) == [
        {"type": "repository", "name": "a", "actions": ["pull"]}
    ]


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        ("repository:a:pull,push", [{"type": "repository", "name": "a", "actions": ["pull"]}]),
        ("repository:a:*", [{"type": "repository", "name": "a", "actions": ["pull"]}]),
        ("repository:a:push", []),
        ("repository:a:delete", []),
    ],
)
def test_a_write_to_the_secondary_gets_a_token_for_what_is_allowed(
    signing_key, secondary, scope: str, granted: list[dict]
) -> None:
    """Issue #25.6: a 403 here made `docker push` retry for 50 s and containerd fail with
    "unexpected status: 403"; the token for the subset lets the registry say `denied`."""
    assert _access(signing_key, _ask(secondary, scope)) == granted


def test_what_is_asked_but_not_allowed_is_logged(secondary, caplog) -> None:
    caplog.set_level(logging.INFO)
    _ask(secondary, "repository:a:pull,push", "registry:catalog:*")
    assert (
        "token for root: repository:a:pull (dropped, not allowed on a read-only secondary: "
        "repository:a:push registry:catalog:*)"
    ) in caplog.text


def test_anonymous_without_a_scope_gets_an_empty_token(signing_key, primary) -> None:
    """What Docker's first realm request and `geo.check`'s realm check ask."""
    assert _access(signing_key, _ask(primary, auth=None)) == []


@pytest.mark.parametrize("scope", ["repository:a:pull", "repository:a:pull,push"])
def test_anonymous_asking_for_a_scope_is_told_to_log_in(primary, secondary, scope) -> None:
    """Issue #25.7: with an empty token `docker push` printed only the registry's `denied`;
    Docker prints this 401's message, which names the fix."""
    for node in (primary, secondary):
        response = _ask(node, scope, auth=None)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert "invoke geo.login" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "auth", [("root", "wrong-password-0123456789"), ("admin", PASSWORD), ("", ""), ("root", "")]
)
def test_bad_credentials_are_401_with_a_basic_challenge(primary, auth) -> None:
    response = _ask(primary, "repository:a:pull", auth=auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    error = response.json()["errors"][0]
    assert error["code"] == "UNAUTHORIZED" and "invoke geo.login" in error["message"]


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
