"""The secondary's Geo worker without Docker: its process, and the pieces around it.

The worker runs as a subprocess (`python -m gdk_geo.secondary`) against a configuration whose
registries and primary nobody serves: its errors at start-up, its health and status with
replication disabled, and `Worker.apply` with no network at all.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from helpers import REPO_ROOT
from rendered import edit_yaml, load_yaml, render_nodes
from worker_rig import SECRETS, over_http, terminate

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import load_secondary, node_root_of
from gdk_geo.registry.client import RegistryClient
from gdk_geo.secondary.event_feed import EventFeed, EventPage, FeedEvent
from gdk_geo.secondary.process import first_user_error
from gdk_geo.secondary.replicator import Replicator
from gdk_geo.secondary.snapshot import StatusSnapshot
from gdk_geo.secondary.tracking import TrackingDB
from gdk_geo.secondary.worker import Worker
from testkit.net import free_port, wait_for


def _offline_config(root: Path, **replication: Any) -> Path:
    """A secondary's gitlab.yml as `geo.reconfigure` renders it for a project at `root`, its
    registries and primary on free ports nobody serves, the registries over http (no CA
    needed); `replication` then sets keys of its `registry_replication` by hand."""
    ports = "".join(
        f"  {node}:\n    port: {free_port()}\n    registry:\n      port: {free_port()}\n"
        for node in ("primary", "secondary")
    )
    gdk_yml = f"registry:\n  auth_enabled: false\ngeo:\n{ports}"
    gitlab_yml = render_nodes(root, gdk_yml, SECRETS).node("secondary").gitlab_yml

    def offline(data: dict[str, Any]) -> None:
        data["registry"]["api_url"] = over_http(data["registry"]["api_url"])
        rendered = data["geo"]["registry_replication"]
        rendered["primary_api_url"] = over_http(rendered["primary_api_url"])
        rendered.update(replication)

    return edit_yaml(gitlab_yml, offline)


def _run_worker(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gdk_geo.secondary", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_unusable_tracking_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    config = _offline_config(tmp_path)
    (node_root_of(config) / "geo").write_text("a file where the database directory should be")
    result = _run_worker(config)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdk-geo worker: "), result.stderr
    assert "tracking database" in lines[0]


def test_missing_ca_file_for_an_https_registry_is_a_clear_error(tmp_path: Path) -> None:
    config = _offline_config(tmp_path, primary_api_url="https://localhost:5000")
    result = _run_worker(config)
    assert result.returncode == 1
    assert "registry_host.crt does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    config = _offline_config(tmp_path)
    port = load_yaml(config)["gitlab"]["port"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = _run_worker(config)
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_disabled_replication_serves_health_and_syncs_nothing(tmp_path: Path) -> None:
    config = _offline_config(tmp_path, enabled=False)
    port = load_yaml(config)["gitlab"]["port"]
    with open(tmp_path / "worker.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gdk_geo.secondary", "--config", str(config)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        health = wait_for(
            "health",
            lambda: httpx.get(f"http://127.0.0.1:{port}/-/health", timeout=1).json(),
            lambda: (tmp_path / "worker.log").read_text(),
        )
        assert health["replication_enabled"] is False
        status = StatusSnapshot.from_json(
            httpx.get(f"http://127.0.0.1:{port}/api/v4/geo/replication/status").json()
        )
        assert status.event_feed.connected is False
        assert sum(status.counts.values()) == 0
        page = httpx.get(f"http://127.0.0.1:{port}/admin/geo").text
        assert "Replication is disabled" in page
    finally:
        assert terminate(process) == 0
    assert "Traceback" not in (tmp_path / "worker.log").read_text()


def test_the_stream_machinery_is_loaded_at_start_up() -> None:
    """anyio's asyncio backend (what a streamed pass reply runs on) is loaded by the
    start-up step, not by the first `geo.sync`; a fresh interpreter, so nothing else has
    loaded it first. (`-X importtime` cannot show it: anyio loads it with import_module.)"""
    code = (
        "import asyncio, sys\n"
        "from gdk_geo.secondary import process\n"
        "before = 'anyio._backends._asyncio' in sys.modules\n"
        "asyncio.run(process.load_stream_machinery())\n"
        "print(before, 'anyio._backends._asyncio' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]


def test_event_page_queues_repositories_and_moves_the_cursor(tmp_path: Path) -> None:
    """`Worker.apply` with no network: the clients are built but never asked anything."""
    settings = load_secondary(_offline_config(tmp_path))
    db = TrackingDB(settings.tracking_db_path)
    source = RegistryClient(settings.primary_api_url)
    target = RegistryClient(settings.registry_api_url)
    feed = EventFeed(settings.primary_geo_url, settings.node_token)
    worker = Worker(settings, Replicator(settings, db, source, target), feed)
    events = [
        FeedEvent(7, "updated", "group/app", "v2", 100.0),
        FeedEvent(8, "updated", "group/app", "v3", 100.5),
        FeedEvent(9, "deleted", "group/app", "v3", 101.0),  # pushed and deleted: no hint
        FeedEvent(10, "updated", "group/base", "v1", 101.5),
        FeedEvent(11, "deleted", "group/base", None, 102.0),  # by digest: hints gone
    ]
    worker.apply(EventPage(events, last_seen_id=11, primary_last_event_id=14))
    assert db.cursor() == 11
    assert db.last_event_at() == 102.0
    assert db.counts()["pending"] == 2
    assert worker.replicator.hints == {"group/app": {"v2"}}
    assert worker.status().lag == 3

    # The primary's log was recreated (its ids start again below our cursor): start over.
    worker.apply(EventPage([], last_seen_id=0, primary_last_event_id=2))
    assert db.cursor() == 0
    db.close()
    for client in (source, target, feed):
        asyncio.run(client.__aexit__(None, None, None))


def test_the_user_error_is_found_inside_task_groups() -> None:
    error = GdkGeoError("disk full")
    nested = BaseExceptionGroup("outer", [ExceptionGroup("inner", [ValueError(), error])])
    assert first_user_error(nested) is error
    assert first_user_error(ValueError()) is None
