"""Registry tokens: scopes, key IDs, signed claims, and the worker's per-request cache."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from yarl import URL

from gdk_geo.registry.auth import MintedTokens, request_access
from gdk_geo.registry.tokens import (
    Access,
    BadScope,
    Minter,
    jwk_thumbprint,
    libtrust_key_id,
    parse_scope,
)


def test_jwk_thumbprint_matches_rfc_7638_example() -> None:
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
        "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert jwk_thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_libtrust_key_id_is_twelve_groups_of_base32(signing_key) -> None:
    key = signing_key
    kid = libtrust_key_id(key.public_key())
    assert re.fullmatch(r"[A-Z2-7]{4}(:[A-Z2-7]{4}){11}", kid), kid


def test_a_token_carries_every_claim_and_the_libtrust_kid_alone(signing_key) -> None:
    """No x5c: a registry verifies a chain on every request that carries one."""
    key = signing_key
    minted = Minter(key, lifetime=300).mint("root", [parse_scope("repository:a/b:pull")])
    header = jwt.get_unverified_header(minted.token)
    assert header["alg"] == "RS256"
    assert header["kid"] == libtrust_key_id(key.public_key())
    assert set(header) == {"alg", "typ", "kid"}
    claims = jwt.decode(
        minted.token, key.public_key(), algorithms=["RS256"], audience="container_registry"
    )
    assert set(claims) == {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}
    assert claims["iss"] == "gitlab-issuer" and claims["sub"] == "root"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["access"] == [{"type": "repository", "name": "a/b", "actions": ["pull"]}]
    assert minted.expires_in == 300
    assert minted.token not in repr(minted)


def test_two_tokens_never_share_a_jti(signing_key) -> None:
    key = signing_key
    minter = Minter(key, lifetime=60)
    ids = {
        jwt.decode(minter.mint("root", []).token, options={"verify_signature": False})["jti"]
        for _ in range(20)
    }
    assert len(ids) == 20


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("repository:group/app:pull", Access("repository", "group/app", ("pull",))),
        ("repository:group/app:push,pull", Access("repository", "group/app", ("pull", "push"))),
        ("repository:a:*", Access("repository", "a", ("pull", "push", "delete"))),
        ("repository:a:pull,fly", Access("repository", "a", ("pull",))),
        ("registry:catalog:*", Access("registry", "catalog", ("*",))),
        ("repository:localhost:5000/x:pull", None),  # a port is not part of a name
    ],
)
def test_scopes_are_parsed_as_the_protocol_writes_them(scope: str, expected) -> None:
    if expected is None:
        with pytest.raises(BadScope):
            parse_scope(scope)
    else:
        assert parse_scope(scope) == expected


@pytest.mark.parametrize(
    "scope",
    [
        "repository:a/../b:pull",
        "repository:a..b:pull",
        "repository:Group/App:pull",
        "repository:" + "a" * 10240 + ":pull",
        "repository::pull",
        "registry:catalog:pull",
        "user:root:pull",
        "",
    ],
)
def test_bad_scopes_are_refused(scope: str) -> None:
    with pytest.raises(BadScope):
        parse_scope(scope)


def test_request_access_is_what_distribution_checks() -> None:
    def scopes(method: str, url: str) -> list[str]:
        return [a.scope() for a in request_access(method, URL(url))]

    base = "https://localhost:5000"
    assert scopes("GET", f"{base}/v2/") == []
    assert scopes("GET", f"{base}/v2/_catalog?n=100") == ["registry:catalog:*"]
    assert scopes("HEAD", f"{base}/v2/a/b/manifests/v1") == ["repository:a/b:pull"]
    assert scopes("PUT", f"{base}/v2/a/manifests/v1") == ["repository:a:pull,push"]
    assert scopes("DELETE", f"{base}/v2/a/manifests/sha256:0") == ["repository:a:delete"]
    mount = f"{base}/v2/a/blobs/uploads/?mount=sha256:0&from=b/c"
    assert scopes("POST", mount) == ["repository:a:pull,push", "repository:b/c:pull"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def _tokens(signing_key, allowed: set[str], lifetime: float = 8.0):
    key = signing_key
    clock = Clock()
    minter = Minter(key, lifetime=lifetime, clock=clock)
    minted: list[list[Access]] = []

    def mint(access):
        minted.append(list(access))
        return minter.mint("gitlab-geo-secondary", minted[-1])

    return MintedTokens(mint, allowed=frozenset(allowed), catalog=True, clock=clock), clock, minted


def test_tokens_are_cached_per_scope_until_shortly_before_they_expire(signing_key) -> None:
    tokens, clock, minted = _tokens(signing_key, {"pull"})
    url = URL("https://localhost:5000/v2/a/manifests/v1")
    first = tokens.header("GET", url)
    assert tokens.header("HEAD", url) == first and len(minted) == 1
    tokens.header("GET", URL("https://localhost:5000/v2/b/manifests/v1"))
    assert len(minted) == 2  # another repository, another token
    clock.now += 5.9  # 8 s lifetime: reused until 2 s (a quarter) before it expires
    assert tokens.header("GET", url) == first
    clock.now += 0.2
    assert tokens.header("GET", url) != first and len(minted) == 3


def test_forget_makes_the_next_request_mint_again(signing_key) -> None:
    tokens, _, minted = _tokens(signing_key, {"pull"})
    url = URL("https://localhost:5000/v2/a/manifests/v1")
    tokens.header("GET", url)
    tokens.forget("GET", url)
    tokens.header("GET", url)
    assert len(minted) == 2


def test_a_primary_token_never_grants_more_than_pull(signing_key) -> None:
    tokens, _, minted = _tokens(signing_key, {"pull"})
    tokens.header("PUT", URL("https://localhost:5000/v2/a/manifests/v1"))
    tokens.header("DELETE", URL("https://localhost:5000/v2/a/manifests/sha256:0"))
    assert [[a.scope() for a in m] for m in minted] == [["repository:a:pull"], []]


def test_a_mount_token_covers_the_source_repository(signing_key) -> None:
    tokens, _, minted = _tokens(signing_key, {"pull", "push", "delete"})
    tokens.header("POST", URL("https://localhost:5001/v2/a/blobs/uploads/?mount=sha256:0&from=b"))
    assert [a.scope() for a in minted[0]] == [
        "repository:a:pull,push,delete",
        "repository:b:pull,push,delete",
    ]


def test_one_secondary_token_serves_every_request_to_a_repository(signing_key) -> None:
    tokens, _, minted = _tokens(signing_key, {"pull", "push", "delete"})
    for method, path in [
        ("HEAD", "/v2/a/manifests/v1"),
        ("POST", "/v2/a/blobs/uploads/"),
        ("PUT", "/v2/a/manifests/v1"),
        ("DELETE", "/v2/a/manifests/sha256:0"),
    ]:
        tokens.header(method, URL(f"https://localhost:5001{path}"))
    assert [[a.scope() for a in m] for m in minted] == [["repository:a:pull,push,delete"]]
