"""Both Geo services bound beyond loopback, on a real socket: every API asks for a credential.

`prepare-site up 8` (tests/support/site) gives this machine 198.18.0.1 on its loopback
interface: an address that is not 127/8, so by our rule (`gdk_geo.node.exposure`) a
non-loopback listener, and one that never leaves the machine. The realm rig runs both
services with gdk.yml's `listen_address` and `hostname` set to it, token auth on, as set-up
renders them. Each API is asked without credentials (refused), with them (served), and the
admin page with a foreign Host and a cross-site POST (refused even with the login). A second
pair on 127.0.0.1 shows loopback as before: the admin page and the metrics without a login.

Traffic goes only to 198.18.0.1 and 127.0.0.1. The in-process half of these checks is
tests/unit/secondary/test_beyond_loopback.py and tests/unit/primary/test_beyond_loopback.py.
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import FIXED_SECRETS
from realm_rig import PASSWORD, USER, Realms, start_realms, stop_realms
from site_kit import HOME_ADDRESS, home_address

NODE_TOKEN = {"Authorization": f"Bearer {FIXED_SECRETS['node_token']}"}
LOGIN = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
WORKER_API = "/api/v4/geo/container_repositories"
ADMIN_POSTS = {"/admin/geo/resync": {"failed": "1"}, "/admin/geo/reverify": {"failed": "1"}}


@pytest.fixture(scope="module")
def beyond(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realms]:
    """Both services listening on 198.18.0.1 (and reached there), for this module."""
    with home_address():
        realms = start_realms(tmp_path_factory.mktemp("beyond"), listen_address=HOME_ADDRESS)
        try:
            yield realms
        finally:
            stop_realms(realms)


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realms]:
    """Both services on 127.0.0.1, as set-up runs them today."""
    realms = start_realms(tmp_path_factory.mktemp("loopback"))
    try:
        yield realms
    finally:
        stop_realms(realms)


def csrf_of(page: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match, page
    return match.group(1)


def test_the_services_listen_only_on_the_non_loopback_address(beyond: Realms) -> None:
    for realm in beyond:
        assert realm.url.startswith(f"http://{HOME_ADDRESS}:")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", realm.port), timeout=2).close()


def test_without_credentials_every_api_is_refused(beyond: Realms) -> None:
    primary, worker = beyond.primary.url, beyond.secondary.url
    refused = {
        "event API": httpx.get(f"{primary}/api/v4/geo/events"),
        "notifications": httpx.post(f"{primary}/api/v4/container_registry_event/events", json={}),
        "primary metrics": httpx.get(f"{primary}/-/metrics"),
        "worker API": httpx.get(f"{worker}{WORKER_API}"),
        "worker API resync": httpx.post(f"{worker}{WORKER_API}/resync", json={"failed": True}),
        "worker API events": httpx.get(f"{worker}/api/v4/geo/passes/1-1/events"),
        "replication status": httpx.get(f"{worker}/api/v4/geo/replication/status"),
        "worker metrics": httpx.get(f"{worker}/-/metrics"),
        "admin page": httpx.get(f"{worker}/admin/geo"),
        "admin JSON": httpx.get(f"{worker}/admin/geo/repositories.json"),
        "admin pass": httpx.get(f"{worker}/admin/geo/passes/1-1"),
        **{
            f"admin POST {path}": httpx.post(f"{worker}{path}", data=form)
            for path, form in ADMIN_POSTS.items()
        },
    }
    codes = {name: response.status_code for name, response in refused.items()}
    assert codes == dict.fromkeys(codes, 401), codes
    assert refused["admin page"].headers["www-authenticate"] == 'Basic realm="gdk-geo admin"'
    for name, response in refused.items():
        assert "gdk_geo_" not in response.text, name
        assert FIXED_SECRETS["node_token"] not in response.text, name


def test_health_stays_open_and_tells_no_more_than_up(beyond: Realms) -> None:
    for realm in beyond:
        health = httpx.get(f"{realm.url}/-/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "node": realm.node}
        assert health.text.count(",") == 1, "nothing but the status and the node"


def test_with_credentials_every_api_answers(beyond: Realms) -> None:
    primary, worker = beyond.primary.url, beyond.secondary.url
    events = httpx.get(f"{primary}/api/v4/geo/events", headers=NODE_TOKEN)
    assert events.status_code == 200 and events.json()["events"] == []
    for realm in beyond:
        metrics = httpx.get(f"{realm.url}/-/metrics", headers=NODE_TOKEN)
        assert metrics.status_code == 200 and "gdk_geo_" in metrics.text, realm.node
        assert "last_event_id" in httpx.get(f"{primary}/-/health", headers=NODE_TOKEN).json()
    listing = httpx.get(f"{worker}{WORKER_API}", headers=NODE_TOKEN)
    assert listing.status_code == 200 and listing.json()["repositories"] == []
    started = httpx.post(f"{worker}{WORKER_API}/resync", json={"failed": True}, headers=NODE_TOKEN)
    assert started.status_code == 202, started.text
    with httpx.stream("GET", f"{worker}{started.json()['events_url']}", headers=NODE_TOKEN) as run:
        assert run.status_code == 200
        assert '"done"' in run.read().decode()
    status = httpx.get(f"{worker}/api/v4/geo/replication/status", headers=NODE_TOKEN)
    assert status.status_code == 200 and "counts" in status.json()

    page = httpx.get(f"{worker}/admin/geo", headers=LOGIN)
    assert page.status_code == 200
    assert PASSWORD not in page.text and FIXED_SECRETS["node_token"] not in page.text
    token = csrf_of(page.text)
    assert httpx.get(f"{worker}/admin/geo/repositories.json", headers=LOGIN).status_code == 200
    for path, form in ADMIN_POSTS.items():
        accepted = httpx.post(
            f"{worker}{path}", data=form, headers={**LOGIN, "X-CSRF-Token": token}
        )
        assert accepted.status_code == 202, (path, accepted.text)
        pass_url = f"{worker}{accepted.json()['events_url']}"
        assert httpx.get(pass_url, headers=LOGIN).status_code == 200, path


def test_wrong_credentials_are_refused(beyond: Realms) -> None:
    worker = beyond.secondary.url
    wrong_login = {"Authorization": "Basic " + base64.b64encode(b"root:wrong").decode()}
    assert httpx.get(f"{worker}/admin/geo", headers=wrong_login).status_code == 401
    assert httpx.get(f"{worker}/admin/geo", headers=NODE_TOKEN).status_code == 401
    assert httpx.get(f"{worker}/-/metrics", headers=LOGIN).status_code == 401
    wrong_token = {"Authorization": "Bearer wrong"}
    for realm in beyond:
        assert httpx.get(f"{realm.url}/-/metrics", headers=wrong_token).status_code == 401


def test_the_admin_page_refuses_a_foreign_host_and_a_cross_site_post(beyond: Realms) -> None:
    worker = beyond.secondary
    token = csrf_of(httpx.get(f"{worker.url}/admin/geo", headers=LOGIN).text)
    foreign = {**LOGIN, "Host": f"rebound.example:{worker.port}", "X-CSRF-Token": token}
    assert httpx.get(f"{worker.url}/admin/geo", headers=foreign).status_code == 403
    for path, form in ADMIN_POSTS.items():
        assert httpx.post(f"{worker.url}{path}", data=form, headers=foreign).status_code == 403
        cross_site = httpx.post(f"{worker.url}{path}", data=form, headers=LOGIN)
        assert cross_site.status_code == 403, path
        assert "CSRF" in cross_site.json()["message"]
    own = {**LOGIN, "Host": f"{HOME_ADDRESS}:{worker.port}"}
    assert httpx.get(f"{worker.url}/admin/geo", headers=own).status_code == 200


def test_on_loopback_the_admin_page_and_metrics_are_as_before(loopback: Realms) -> None:
    worker = loopback.secondary.url
    page = httpx.get(f"{worker}/admin/geo")
    assert page.status_code == 200 and "www-authenticate" not in page.headers
    token = csrf_of(page.text)
    for path, form in ADMIN_POSTS.items():
        assert httpx.post(f"{worker}{path}", data=form).status_code == 403, "CSRF, as before"
        accepted = httpx.post(f"{worker}{path}", data=form, headers={"X-CSRF-Token": token})
        assert accepted.status_code == 202, path
    for realm in loopback:
        assert httpx.get(f"{realm.url}/-/metrics").status_code == 200, realm.node
    assert "last_event_id" in httpx.get(f"{loopback.primary.url}/-/health").json()
    assert httpx.get(f"{worker}{WORKER_API}").status_code == 401, "the worker API, as before"


def test_the_cli_reads_the_status_beyond_loopback_with_the_node_token(
    beyond: Realms, tmp_path: Path
) -> None:
    """`geo.status` and `geo.check` read the status JSON the worker now guards: they send
    the node token from the node's gitlab.yml."""
    from gdk_geo.node.settings import node_token_of
    from gdk_geo.ops.status import _replication

    token = node_token_of(beyond.secondary.config)
    assert token == FIXED_SECRETS["node_token"]
    assert _replication(beyond.secondary.url, token) is not None
    assert _replication(beyond.secondary.url, "") is None
