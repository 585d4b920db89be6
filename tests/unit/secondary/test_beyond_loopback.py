"""The worker's whole app (`worker_app`) in-process, as it answers on a listener beyond
loopback and on loopback: which routes ask for which credential (`gdk_geo.node.exposure`).

The same over a real socket bound on 198.18.0.1: tests/integration/test_beyond_loopback.py.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import in_process_secondary_settings

from gdk_geo.node.settings import SecondaryWorkerSettings, TokenAuthSettings
from gdk_geo.secondary.event_feed import EventFeed
from gdk_geo.secondary.host_check import allowed_hosts
from gdk_geo.secondary.replicator import Replicator
from gdk_geo.secondary.tracking import TrackingDB
from gdk_geo.secondary.web import worker_app
from gdk_geo.secondary.worker import Worker

TOKEN = "node-token-0123456789"
USER, PASSWORD = "root", "registry-password-0123456789"
PORT = 3002  # only the Host header: the app is called in-process, nothing listens
HOSTNAME = "geo.example"  # gitlab.host: never resolved, only compared with Host
BEYOND = "198.18.0.1"

API = "/api/v4/geo/container_repositories"
ADMIN_GETS = ("/admin/geo", "/admin/geo/repositories.json", "/admin/geo/passes/1-1")
ADMIN_POSTS = {"/admin/geo/resync": {"failed": "1"}, "/admin/geo/reverify": {"failed": "1"}}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


class NoRegistry:
    """A registry client no test here reaches: a failed-only pass over no rows syncs nothing."""

    base_url = "http://127.0.0.1:9"

    async def catalog(self) -> list[str]:
        return []


def settings(root: Path, listen_address: str) -> SecondaryWorkerSettings:
    return in_process_secondary_settings(
        root,
        listen_address=listen_address,
        port=PORT,
        node_token=TOKEN,
        hostname=HOSTNAME,
        auth=TokenAuthSettings(username=USER, password=PASSWORD),
    )


Scenario = Callable[[httpx.AsyncClient], Awaitable[Any]]


def against(root: Path, listen_address: str, scenario: Scenario) -> Any:
    """Run `scenario` with a client of the worker's app, its base URL the listener's own."""
    config = settings(root, listen_address)

    async def run() -> Any:
        db = TrackingDB(config.tracking_db_path)
        try:
            replicator = Replicator(config, db, NoRegistry(), NoRegistry())  # type: ignore[arg-type]
            worker = Worker(config, replicator, EventFeed(config.primary_geo_url, TOKEN))
            transport = httpx.ASGITransport(app=worker_app(config, worker))
            host = f"[{listen_address}]" if ":" in listen_address else listen_address
            async with httpx.AsyncClient(
                transport=transport, base_url=f"http://{host}:{PORT}"
            ) as client:
                return await scenario(client)
        finally:
            db.close()

    return asyncio.run(run())


def csrf_of(page: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match, page
    return match.group(1)


async def finish(client: httpx.AsyncClient, started: httpx.Response) -> None:
    """Read a started pass to its end (through the API), so nothing runs past the test."""
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    events = await client.get(f"/api/v4/geo/passes/{run_id}/events", headers=BEARER)
    assert events.status_code == 200 and '"done"' in events.text, events.text


# --- beyond loopback --------------------------------------------------------------------


@pytest.mark.parametrize("address", [BEYOND, "0.0.0.0"])
def test_every_api_but_health_is_refused_without_a_credential(tmp_path: Path, address) -> None:
    async def scenario(client: httpx.AsyncClient) -> dict[str, int]:
        host = {"Host": f"{HOSTNAME}:{PORT}"}  # a wildcard listener's own name
        codes = {
            "api": (await client.get(API, headers=host)).status_code,
            "api resync": (await client.post(f"{API}/resync", json={}, headers=host)).status_code,
            "metrics": (await client.get("/-/metrics", headers=host)).status_code,
            "status": (
                await client.get("/api/v4/geo/replication/status", headers=host)
            ).status_code,
            "health": (await client.get("/-/health", headers=host)).status_code,
        }
        for path in ADMIN_GETS:
            codes[path] = (await client.get(path, headers=host)).status_code
        for path, form in ADMIN_POSTS.items():
            codes[path] = (await client.post(path, data=form, headers=host)).status_code
        return codes

    codes = against(tmp_path, address, scenario)
    assert codes.pop("health") == 200
    assert codes == dict.fromkeys(codes, 401), codes


def test_the_admin_page_asks_for_basic_credentials(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        refused = await client.get("/admin/geo")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Basic realm="gdk-geo admin"'
        for wrong in (basic(password="wrong"), basic(user="admin"), BEARER):
            assert (await client.get("/admin/geo", headers=wrong)).status_code == 401, wrong
        page = await client.get("/admin/geo", headers=basic())
        assert page.status_code == 200
        assert PASSWORD not in page.text and TOKEN not in page.text
        listing = await client.get("/admin/geo/repositories.json", headers=basic())
        assert listing.status_code == 200 and listing.json()["repositories"] == []
        assert (await client.get("/admin/geo/passes/1-1", headers=basic())).status_code == 404

    against(tmp_path, BEYOND, scenario)


def test_admin_actions_need_the_login_and_still_the_csrf_token(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        token = csrf_of((await client.get("/admin/geo", headers=basic())).text)
        for path, form in ADMIN_POSTS.items():
            no_login = await client.post(path, data=form, headers={"X-CSRF-Token": token})
            assert no_login.status_code == 401, path
            cross_site = await client.post(path, data=form, headers=basic())
            assert cross_site.status_code == 403, path
            assert "CSRF" in cross_site.json()["message"]
            wrong = await client.post(path, data=form, headers={**basic(), "X-CSRF-Token": "x"})
            assert wrong.status_code == 403, path
            started = await client.post(path, data=form, headers={**basic(), "X-CSRF-Token": token})
            await finish(client, started)
            plain_form = await client.post(
                path, data={**form, "csrf_token": token}, headers=basic()
            )
            assert plain_form.status_code == 303, path

    against(tmp_path, BEYOND, scenario)


def test_the_host_check_stays_with_gitlab_host_and_the_listen_address(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> dict[str, int]:
        codes = {}
        for host in (f"{HOSTNAME}:{PORT}", f"{BEYOND}:{PORT}", f"rebound.example:{PORT}"):
            for path in ("/admin/geo", API):
                headers = {**basic(), "Host": host} if path.startswith("/admin") else BEARER
                response = await client.get(path, headers={**headers, "Host": host})
                codes[f"{host}{path}"] = response.status_code
        return codes

    codes = against(tmp_path, BEYOND, scenario)
    assert codes == {
        f"{HOSTNAME}:{PORT}/admin/geo": 200,
        f"{HOSTNAME}:{PORT}{API}": 200,
        f"{BEYOND}:{PORT}/admin/geo": 200,
        f"{BEYOND}:{PORT}{API}": 200,
        f"rebound.example:{PORT}/admin/geo": 403,
        f"rebound.example:{PORT}{API}": 403,
    }


def test_allowed_hosts_are_the_host_and_the_listen_address_with_the_port() -> None:
    assert allowed_hosts("Geo.Example", BEYOND, PORT) == {
        f"geo.example:{PORT}",
        f"{BEYOND}:{PORT}",
    }
    assert allowed_hosts("geo.example", "::", PORT) == {f"geo.example:{PORT}", f"[::]:{PORT}"}


def test_metrics_and_status_take_the_node_token_and_health_tells_no_more(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        refused = await client.get("/-/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "gdk_geo" not in refused.text
        assert (await client.get("/-/metrics", headers=basic())).status_code == 401
        metrics = await client.get("/-/metrics", headers=BEARER)
        assert metrics.status_code == 200 and "gdk_geo_event_cursor" in metrics.text
        private = await client.get("/-/metrics", headers={"PRIVATE-TOKEN": TOKEN})
        assert private.status_code == 200
        status = await client.get("/api/v4/geo/replication/status", headers=BEARER)
        assert status.status_code == 200 and status.json()["cursor"] == 0
        assert (await client.get("/-/health")).json() == {"status": "ok", "node": "secondary"}
        full = (await client.get("/-/health", headers=BEARER)).json()
        assert full["cursor"] == 0 and full["replication_enabled"] is True

    against(tmp_path, BEYOND, scenario)


def test_the_worker_api_works_with_the_node_token(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        listing = await client.get(API, headers=BEARER)
        assert listing.status_code == 200 and listing.json()["repositories"] == []
        assert (await client.get(API, headers=basic())).status_code == 401
        await finish(
            client, await client.post(f"{API}/resync", json={"failed": True}, headers=BEARER)
        )

    against(tmp_path, BEYOND, scenario)


# --- on loopback: as before -----------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_on_loopback_the_page_and_metrics_need_nothing(tmp_path: Path, address: str) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        page = await client.get("/admin/geo")
        assert page.status_code == 200
        assert "www-authenticate" not in page.headers
        token = csrf_of(page.text)
        for path, form in ADMIN_POSTS.items():
            assert (await client.post(path, data=form)).status_code == 403, "CSRF still"
            await finish(
                client, await client.post(path, data=form, headers={"X-CSRF-Token": token})
            )
        assert (await client.get("/-/metrics")).status_code == 200
        assert (await client.get("/api/v4/geo/replication/status")).status_code == 200
        assert "cursor" in (await client.get("/-/health")).json()
        assert (await client.get(API)).status_code == 401, "the worker API always takes the token"
        foreign = await client.get("/admin/geo", headers={"Host": f"rebound.example:{PORT}"})
        assert foreign.status_code == 403

    against(tmp_path, address, scenario)
