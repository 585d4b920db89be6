"""The primary's app in-process, bound beyond loopback and on it: what each route asks for
(`gdk_geo.node.exposure`). Over a real socket on 198.18.0.1:
tests/integration/test_beyond_loopback.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from helpers import in_process_primary_settings

from gdk_geo.primary.app import create_app

SECRET = "beyond-loopback-notification-secret"
TOKEN = "beyond-loopback-node-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def responses(root: Path, listen_address: str, *requests: tuple[str, dict[str, str]]) -> list:
    """GET each (path, headers) from the primary's app bound on `listen_address`."""
    settings = replace(
        in_process_primary_settings(root, SECRET, TOKEN), listen_address=listen_address
    )
    app = create_app(settings)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://primary") as client:
            return [await client.get(path, headers=headers) for path, headers in requests]

    try:
        return asyncio.run(run())
    finally:
        app.state.service.log.close()


@pytest.mark.parametrize("address", ["198.18.0.1", "0.0.0.0", "::"])
def test_beyond_loopback_metrics_and_events_take_the_node_token(tmp_path: Path, address) -> None:
    metrics, wrong, events, health = responses(
        tmp_path,
        address,
        ("/-/metrics", {}),
        ("/-/metrics", {"Authorization": "Bearer wrong"}),
        ("/api/v4/geo/events", {}),
        ("/-/health", {}),
    )
    assert (metrics.status_code, wrong.status_code, events.status_code) == (401, 401, 401)
    assert metrics.headers["www-authenticate"].startswith("Bearer")
    assert "gdk_geo" not in metrics.text
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "node": "primary"}, "no more than that it is up"

    metrics, events, health = responses(
        tmp_path,
        address,
        ("/-/metrics", BEARER),
        ("/api/v4/geo/events", BEARER),
        ("/-/health", BEARER),
    )
    assert metrics.status_code == 200 and "gdk_geo_event_log_last_id" in metrics.text
    assert events.status_code == 200 and events.json()["events"] == []
    assert health.json()["last_event_id"] == 0, "the node token's holder (geo.check) reads it"


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_on_loopback_metrics_and_health_are_as_before(tmp_path: Path, address: str) -> None:
    metrics, health, events = responses(
        tmp_path, address, ("/-/metrics", {}), ("/-/health", {}), ("/api/v4/geo/events", {})
    )
    assert metrics.status_code == 200 and "gdk_geo_event_log_last_id" in metrics.text
    assert health.json() == {"status": "ok", "node": "primary", "last_event_id": 0}
    assert events.status_code == 401, "the event API always takes the node token"


def test_health_never_shows_a_secret(tmp_path: Path) -> None:
    for address in ("127.0.0.1", "198.18.0.1"):
        for headers in ({}, BEARER):
            [health] = responses(tmp_path / address, address, ("/-/health", headers))
            assert SECRET not in health.text and TOKEN not in health.text
