"""The one factory of HTTP clients: the same TLS, no environment proxies, for every caller."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from gdk_geo.registry import http


def test_tls_verifies_against_the_ca_file_or_the_system_store(tmp_path: Path) -> None:
    for context in (http.tls_context(), http.tls_context(None)):
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname
    with pytest.raises(FileNotFoundError):
        http.tls_context(tmp_path / "missing.crt")


def test_only_https_needs_a_ca_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    assert http.ca_for("https://localhost:5000", ca) == ca
    assert http.ca_for("HTTPS://localhost:5000", ca) == ca
    assert http.ca_for("http://127.0.0.1:5000", ca) is None


def test_httpx_clients_ignore_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with http.httpx_client(headers={"X-Test": "1"}) as client:
        assert not client._trust_env
        assert client.headers["User-Agent"] == http.USER_AGENT
        assert client.headers["X-Test"] == "1"
    async_client = http.httpx_async_client()
    assert not async_client._trust_env
    asyncio.run(async_client.aclose())


def test_aiohttp_sessions_ignore_proxy_settings() -> None:
    async def session_options() -> tuple[bool, str]:
        async with http.aiohttp_session(headers={"User-Agent": "x"}) as session:
            return session.trust_env, session.headers["User-Agent"]

    assert asyncio.run(session_options()) == (False, "x")
