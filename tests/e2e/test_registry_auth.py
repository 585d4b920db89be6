"""Registry token auth against running nodes: real registries judge real and hostile tokens.

One project is set up with `geo.setup` (auth on, the default). Every hostile token below
is refused by Distribution itself (Debian's 2.8 here, the `registry:2` family); only the
token service's own answers are tested in-process, in test_token_service.py.

Distribution allows 60 s of clock skew on `exp` and `nbf`, so "expired" and "not yet
valid" tokens here are an hour off.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import running_project
from registry_login import RegistryLogin, credentials, push_image

from gdk_geo.node import settings as node_settings
from gdk_geo.pki import signing
from gdk_geo.project import Project
from gdk_geo.registry.reference import OCI_MANIFEST
from gdk_geo.registry.tokens import Access, Minter, jwk_thumbprint, libtrust_key_id

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    with running_project(tmp_path_factory.mktemp("auth"), "a") as project:
        yield project


def _url(project: Project, node: str) -> str:
    return project.load().node(node).registry_url


def _ca(project: Project) -> Path:
    return project.trust_dir(project.load()) / "ca.crt"


def _verify(project: Project) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(_ca(project)))


def _key(project: Project) -> rsa.RSAPrivateKey:
    return signing.load_signing_key(project.node(project.load(), "primary").signing_key)


def _minter(project: Project, **kwargs) -> Minter:
    paths = project.node(project.load(), "primary")
    return Minter(
        signing.load_signing_key(paths.signing_key),
        lifetime=300,
        **kwargs,
    )


def _claims(granted: list[Access], **changes) -> dict:
    now = int(time.time())
    claims = {
        "iss": "gitlab-issuer",
        "sub": "root",
        "aud": "container_registry",
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": [a.claim() for a in granted],
    }
    claims.update(changes)
    return claims


PULL_A = [Access("repository", "auth/a", ("pull",))]
PUSH_A = [Access("repository", "auth/a", ("pull", "push"))]


def _get_tags(project: Project, node: str, token: str, repo: str = "auth/a") -> httpx.Response:
    return httpx.get(
        f"{_url(project, node)}/v2/{repo}/tags/list",
        headers={"Authorization": f"Bearer {token}"},
        verify=_verify(project),
        timeout=10,
    )


def _start_upload(project: Project, node: str, token: str, repo: str = "auth/a") -> int:
    response = httpx.post(
        f"{_url(project, node)}/v2/{repo}/blobs/uploads/",
        headers={"Authorization": f"Bearer {token}"},
        verify=_verify(project),
        timeout=10,
    )
    return response.status_code


def test_a_token_minted_with_the_key_is_accepted_by_both_registries(project: Project) -> None:
    token = _minter(project).mint("root", [Access("registry", "catalog", ("*",))]).token
    for node in ("primary", "secondary"):
        response = httpx.get(
            f"{_url(project, node)}/v2/_catalog",
            headers={"Authorization": f"Bearer {token}"},
            verify=_verify(project),
            timeout=10,
        )
        assert response.status_code == 200, (node, response.text)


def test_distribution_2_finds_the_key_by_its_libtrust_kid_without_x5c(project: Project) -> None:
    token = _minter(project).mint("root", PUSH_A).token
    assert "x5c" not in jwt.get_unverified_header(token)
    assert _start_upload(project, "primary", token) == 202


def test_distribution_2_does_not_know_the_rfc_7638_kid(project: Project) -> None:
    """The kid 3.x matches a bundle key by: 2.x refuses it, which is why our tokens carry
    the libtrust kid and 3.x finds that in the rendered JWKS."""
    key = _key(project)
    token = jwt.encode(
        _claims(PUSH_A), key, algorithm="RS256", headers={"kid": jwk_thumbprint(key.public_key())}
    )
    assert _start_upload(project, "primary", token) == 401


def _unsigned(claims: dict) -> str:
    def part(data: dict) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _hs256_with_public_key(project: Project, claims: dict) -> str:
    """Algorithm confusion: HMAC keyed with the public certificate the registry trusts."""
    import hmac

    cert_pem = project.node(project.load(), "primary").signing_certificate.read_bytes()
    header = {"alg": "HS256", "typ": "JWT", "kid": libtrust_key_id(_key(project).public_key())}

    def part(data: dict) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signed = f"{part(header)}.{part(claims)}"
    mac = hmac.new(cert_pem, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _hostile_tokens(project: Project) -> dict[str, str]:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = {"kid": libtrust_key_id(_key(project).public_key())}
    now = int(time.time())

    def signed(**changes) -> str:
        return jwt.encode(_claims(PUSH_A, **changes), _key(project), "RS256", headers=kid)

    return {
        "another key": jwt.encode(
            _claims(PUSH_A),
            stranger,
            "RS256",
            headers={"kid": libtrust_key_id(stranger.public_key())},
        ),
        "another key, our kid": jwt.encode(_claims(PUSH_A), stranger, "RS256", headers=kid),
        "alg none": _unsigned(_claims(PUSH_A)),
        "HS256 with the public key": _hs256_with_public_key(project, _claims(PUSH_A)),
        "expired": signed(exp=now - 3600, nbf=now - 3900, iat=now - 3900),
        "future nbf": signed(nbf=now + 3600, iat=now + 3600, exp=now + 3900),
        "wrong aud": signed(aud="another_registry"),
        "wrong iss": signed(iss="another-issuer"),
        "pull token used to push": signed(access=[a.claim() for a in PULL_A]),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize(
    "case",
    [
        "another key",
        "another key, our kid",
        "alg none",
        "HS256 with the public key",
        "expired",
        "future nbf",
        "wrong aud",
        "wrong iss",
        "pull token used to push",
        "garbage",
    ],
)
def test_hostile_tokens_are_refused_by_the_registry(project: Project, case: str) -> None:
    token = _hostile_tokens(project)[case]
    assert _start_upload(project, "primary", token) == 401


def test_a_users_token_cannot_push_to_the_secondary(project: Project) -> None:
    """Asked for push, the secondary's realm grants pull only (issue #25.6), and the
    registry refuses the upload with that token."""
    login = RegistryLogin.of(project)
    realm = f"{project.load().node('secondary').service_url}/jwt/auth"
    asked = httpx.get(
        realm,
        params={"service": "container_registry", "scope": "repository:auth/a:pull,push"},
        auth=login.basic,
        timeout=10,
    )
    assert asked.status_code == 200, asked.text
    claims = jwt.decode(asked.json()["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "auth/a", "actions": ["pull"]}]
    assert _start_upload(project, "secondary", asked.json()["token"]) == 401


def test_a_refresh_token_is_no_registry_token(project: Project) -> None:
    realm = f"{project.load().node('primary').service_url}/jwt/auth"
    answer = httpx.get(
        realm,
        params={"service": "container_registry", "offline_token": "true"},
        auth=RegistryLogin.of(project).basic,
        timeout=10,
    )
    assert _get_tags(project, "primary", answer.json()["refresh_token"]).status_code == 401


def test_hostile_requests_leave_no_5xx_and_no_secret_in_any_log(project: Project) -> None:
    cfg = project.load()
    user, password = credentials(project)
    realm = f"{cfg.node('primary').service_url}/jwt/auth"
    statuses = [
        httpx.get(realm, params=params, headers=headers, timeout=10).status_code
        for params, headers in [
            ({"service": "container_registry"}, {"Authorization": "Basic %%%"}),
            ({"service": "container_registry", "scope": "repository:a/../b:pull"}, {}),
            ({"service": "container_registry", "scope": "repository:A:pull"}, {}),
            ({"service": "container_registry", "scope": "x" * 10240}, {}),
            ({"service": "container_registry", "scope": ["repository:a:pull"] * 1000}, {}),
        ]
    ]
    statuses.append(httpx.get(realm, params={"service": "x"}, auth=(user, "wrong" * 5)).status_code)
    assert all(400 <= status < 500 for status in statuses), statuses
    good = httpx.get(realm, params={"service": "container_registry"}, auth=(user, password))
    token = good.json()["token"]
    for node in ("primary", "secondary"):
        log = project.node(cfg, node).service_log.read_text()
        assert password not in log and token not in log
        assert "wrong" * 5 not in log


# -- the worker's own tokens -----------------------------------------------------------------


def test_geo_sync_and_verify_run_on_minted_tokens(project: Project) -> None:
    from helpers import invoke

    digest = push_image(project, "auth/synced", b"synced with minted tokens")
    synced = invoke(project.root, "geo.sync", "--repo", "auth/synced")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    verified = invoke(project.root, "geo.verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    secondary = httpx.head(
        f"{_url(project, 'secondary')}/v2/auth/synced/manifests/v1",
        headers={"Accept": OCI_MANIFEST},
        verify=_verify(project),
        auth=RegistryLogin.of(project),
    )
    assert secondary.headers.get("Docker-Content-Digest") == digest


def test_a_refused_token_is_minted_again_once(project: Project) -> None:
    """The first token the worker's client sends is signed by a stranger (as if the key had
    rotated); the registry's 401 makes it mint again, once, and the request succeeds."""
    import asyncio

    from gdk_geo.registry.auth import MintedTokens
    from gdk_geo.registry.client import RegistryClient
    from gdk_geo.registry.errors import TokenRefused

    good = _minter(project)
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = Minter(stranger_key, lifetime=300)
    minted: list[str] = []

    def flaky(access):
        minted.append("stranger" if not minted else "good")
        return (stranger if len(minted) == 1 else good).mint("geo", access)

    def always_bad(access):
        minted.append("stranger")
        return stranger.mint("geo", access)

    async def catalog(mint) -> list[str]:
        tokens = MintedTokens(mint, allowed=frozenset({"pull"}), catalog=True)
        async with RegistryClient(
            _url(project, "primary"), ca_file=_ca(project), tokens=tokens
        ) as client:
            return await client.catalog()

    assert isinstance(asyncio.run(catalog(flaky)), list)
    assert minted == ["stranger", "good"]
    minted.clear()
    with pytest.raises(TokenRefused, match=r"geo\.check"):
        asyncio.run(catalog(always_bad))
    assert minted == ["stranger", "stranger"]  # re-minted once, not in a loop


def test_a_blob_copy_that_outlasts_its_token_completes(project: Project) -> None:
    """Tokens of 2 s, a blob streamed for longer: the registry checks a token when a request
    starts, so the copy completes, and the requests after it get freshly minted tokens."""
    import asyncio

    from gdk_geo.registry.auth import MintedTokens
    from gdk_geo.registry.client import RegistryClient

    payload = bytes(range(256)) * (64 * 1024 * 4)  # 64 MiB
    push_image(project, "auth/big", payload)
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    minter = _minter(project)
    minter.lifetime = 2
    minted: list[float] = []

    def mint(access):
        minted.append(time.monotonic())
        return minter.mint("geo", access)

    async def slow(chunks):
        sent = 0
        async for chunk in chunks:
            sent += len(chunk)
            if sent >= 8 * 1024 * 1024:  # 0.4 s per 8 MiB: the stream takes over 3 s
                sent = 0
                await asyncio.sleep(0.4)
            yield chunk

    async def copy() -> bool:
        source = MintedTokens(mint, allowed=frozenset({"pull"}), catalog=True)
        target = MintedTokens(mint, allowed=frozenset({"pull", "push"}), catalog=True)
        ca = _ca(project)
        async with (
            RegistryClient(_url(project, "primary"), ca_file=ca, tokens=source) as src,
            RegistryClient(_url(project, "secondary"), ca_file=ca, tokens=target) as dst,
        ):
            started = time.monotonic()
            async with src.open_blob("auth/big", digest, len(payload)) as chunks:
                await dst.upload_blob("auth/copied", digest, slow(chunks), len(payload))
            assert time.monotonic() - started > 2  # longer than the token's lifetime
            return await dst.blob_exists("auth/copied", digest)

    assert asyncio.run(copy())
    assert len(minted) >= 3  # source, target, and a fresh one for the HEAD after


def test_the_worker_settings_read_auth_from_gitlab_yml(project: Project) -> None:
    secondary = node_settings.load_secondary(project.node(project.load(), "secondary").gitlab_yml)
    assert secondary.auth.enabled and secondary.auth.token_expire_delay == 300
    assert secondary.auth.key_path.name == "localhost.key"
    assert credentials(project)[1] not in repr(secondary.auth)


# -- what Distribution does with a token, as the README states it ------------------------------


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("exp 30 s ago", 202),
        ("exp 90 s ago", 401),
        ("nbf in 30 s", 202),
        ("nbf in 90 s", 401),
    ],
)
def test_distribution_allows_60_s_of_skew_on_exp_and_nbf(
    project: Project, case: str, status: int
) -> None:
    """Distribution's fixed leeway (`token.Leeway`, 60 s) on both ends of a token's life."""
    now = int(time.time())
    times = {
        "exp 30 s ago": {"exp": now - 30, "nbf": now - 330, "iat": now - 330},
        "exp 90 s ago": {"exp": now - 90, "nbf": now - 390, "iat": now - 390},
        "nbf in 30 s": {"exp": now + 330, "nbf": now + 30, "iat": now + 30},
        "nbf in 90 s": {"exp": now + 390, "nbf": now + 90, "iat": now + 90},
    }[case]
    kid = {"kid": libtrust_key_id(_key(project).public_key())}
    token = jwt.encode(_claims(PUSH_A, **times), _key(project), "RS256", headers=kid)
    assert _start_upload(project, "primary", token) == status


def _refusals(project: Project, node: str) -> str:
    from gdk_geo.runtime import containers

    container = containers.engine().containers.get(containers.container_name(project.load(), node))
    return container.logs().decode(errors="replace")


def test_a_refused_token_is_one_warning_in_the_registry_log_without_the_token(
    project: Project,
) -> None:
    from testkit.net import wait_for

    before = _refusals(project, "primary").count("error authorizing context: invalid token")
    token = _hostile_tokens(project)["wrong iss"]
    assert _start_upload(project, "primary", token) == 401
    wait_for(
        "the registry's warning",
        lambda: (
            _refusals(project, "primary").count("error authorizing context: invalid token") > before
        ),
    )
    log = _refusals(project, "primary")
    assert log.count("error authorizing context: invalid token") == before + 1
    assert token not in log and "another-issuer" not in log  # why is logged only at info
