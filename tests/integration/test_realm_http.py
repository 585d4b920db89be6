"""Both Geo services' realms as processes: what uvicorn answers before `/jwt/auth` runs, and
the OAuth2 `POST` form as a real client sends it (no Docker needed; see realm_rig.py)."""

from __future__ import annotations

import base64
import contextlib
import re
import socket
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from realm_rig import PASSWORD, SERVICE, USER, Realm, Realms, start_realms, stop_realms

from gdk_geo.registry.realm_http import HEAD_LIMIT


@pytest.fixture(scope="module")
def realms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realms]:
    running = start_realms(tmp_path_factory.mktemp("realms"))
    yield running
    stop_realms(running)


def _raw(realm: Realm, head: bytes) -> tuple[int | None, str]:
    """Send `head` as a plain client does (all of it, then read): the status line's code,
    or None, and the error that ended the exchange ("" when the server closed cleanly)."""
    reply, error = b"", ""
    try:
        with socket.create_connection(("127.0.0.1", realm.port), timeout=30) as sock:
            sock.sendall(head)
            while chunk := sock.recv(65536):
                reply += chunk
    except OSError as exc:  # ConnectionResetError, BrokenPipeError
        error = type(exc).__name__
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", reply)
    return (int(match.group(1)) if match else None), error


def _head(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: localhost", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.mark.parametrize("node", ["primary", "secondary"])
def test_a_one_megabyte_password_is_a_431_never_a_reset(realms: Realms, node: str) -> None:
    """Issue #25.8: the primary answered 400 and reset, the secondary reset."""
    realm = getattr(realms, node)
    password = "p" * (1024 * 1024)
    basic = base64.b64encode(f"{USER}:{password}".encode()).decode()
    head = _head(f"/jwt/auth?service={SERVICE}", f"Authorization: Basic {basic}")
    assert [_raw(realm, head) for _ in range(10)] == [(431, "")] * 10
    assert password not in realm.log_text()


@pytest.mark.parametrize("node", ["primary", "secondary"])
def test_a_request_line_over_the_limit_is_a_431(realms: Realms, node: str) -> None:
    realm = getattr(realms, node)
    target = f"/jwt/auth?service={SERVICE}&scope=" + "x" * (2 * HEAD_LIMIT)
    assert _raw(realm, _head(target)) == (431, "")


@pytest.mark.parametrize("node", ["primary", "secondary"])
def test_the_service_still_answers_after_a_refused_head(realms: Realms, node: str) -> None:
    realm = getattr(realms, node)
    _raw(realm, _head("/jwt/auth", "X-Padding: " + "x" * (4 * HEAD_LIMIT)))
    answer = httpx.get(realm.realm, params={"service": SERVICE}, auth=(USER, PASSWORD))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("node", ["primary", "secondary"])
def test_a_malformed_request_is_still_a_400(realms: Realms, node: str) -> None:
    realm = getattr(realms, node)
    with contextlib.closing(socket.create_connection(("127.0.0.1", realm.port))) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400 ")


def test_containerds_post_gets_a_token_from_both_realms(realms: Realms) -> None:
    """Issue #28: containerd posts its OAuth2 form first. Both realms answer it (the
    secondary with pull only), and the refresh token one gives is good at the other."""
    form = {
        "client_id": "containerd-client",
        "grant_type": "password",
        "password": PASSWORD,
        "scope": "repository:group/app:pull,push",
        "service": SERVICE,
        "username": USER,
        "access_type": "offline",
    }
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "User-Agent": "containerd/1.6.20~ds1",
    }
    primary = httpx.post(
        realms.primary.realm, content=urlencode(sorted(form.items())), headers=headers
    )
    assert primary.status_code == 200, primary.text
    assert primary.json()["scope"] == "repository:group/app:pull,push"
    refresh = {
        "client_id": "containerd-client",
        "grant_type": "refresh_token",
        "refresh_token": primary.json()["refresh_token"],
        "scope": "repository:group/app:pull,push",
        "service": SERVICE,
    }
    secondary = httpx.post(
        realms.secondary.realm, content=urlencode(sorted(refresh.items())), headers=headers
    )
    assert secondary.status_code == 200, secondary.text
    assert secondary.json()["scope"] == "repository:group/app:pull"
    for realm in realms:
        assert form["password"] not in realm.log_text()
        assert refresh["refresh_token"] not in realm.log_text()
