"""The secondary's Geo worker, run for real.

The docker tests run the worker as a subprocess (`python -m gdk_geo.secondary`) against two
real registries (host networking, 127.0.0.1, plain HTTP) and the primary's real Geo service
(`python -m gdk_geo.primary`), which the primary registry notifies on every push.
Nothing is mocked: an image pushed over HTTP to the primary registry reaches the secondary
through notification → event log → event API → worker → sync, exactly as in `geo.setup`.

The registries share one module-wide setup; every test runs its own worker with its own
tracking database and its own repositories, so the tests don't depend on each other.
Plain HTTP is fine here: the worker still carries a `ca_file` (it must), and only uses it for
https URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import REPO_ROOT
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from gdk_geo import render
from gdk_geo.errors import GdkGeoError
from gdk_geo.node_settings import load_secondary
from gdk_geo.registry.client import RegistryClient
from gdk_geo.secondary.event_feed import EventFeed, EventPage, FeedEvent
from gdk_geo.secondary.process import _first_user_error
from gdk_geo.secondary.replicator import Replicator, sync_once
from gdk_geo.secondary.results import RepositorySyncResult
from gdk_geo.secondary.snapshot import RepositoryStatus, StatusSnapshot
from gdk_geo.secondary.tracking import TrackingDB
from gdk_geo.secondary.worker import Worker
from gdk_geo.topology import Node
from testkit.images import push_image
from testkit.net import free_port, wait_for

NODE_TOKEN = "test-node-token"
NOTIFICATION_SECRET = "test-notification-secret"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


# -- helpers ----------------------------------------------------------------------------------


def digest_of_tag(registry_url: str, repo: str, tag: str) -> str | None:
    response = httpx.head(
        f"{registry_url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}, timeout=5
    )
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))  # JSON is YAML
    return path


def terminate(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it does not go; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


# -- registries and the primary's Geo service ---------------------------------------------------


@dataclass
class Registry:
    """One registry container on 127.0.0.1:<port>, plain HTTP."""

    client: Any
    image: str
    name: str
    port: int
    root: Path
    notify_port: int | None = None
    container: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """The node's `config.yml` rendered from the real template, then served over plain
        HTTP: the template's TLS section is dropped (TLS is tested in tests/sync)."""
        primary = self.notify_port is not None
        context = {
            "node": Node(
                "primary" if primary else "secondary",
                primary,
                self.notify_port or 0,
                self.port,
                "127.0.0.1",
            ),
            "auth": {"enabled": False},  # the engine under test, not token auth
            "read_only": False,
            "hostname": "127.0.0.1",
            "listen_address": "127.0.0.1",
            "registry_http_secret": "test-http-secret",
            "notification_secret": NOTIFICATION_SECRET,
            "registry_log_level": "warn",
            # Quick redelivery: a test restarts the primary service under the registry.
            "notifications": {"timeout": "500ms", "threshold": 5, "backoff": "1s"},
        }
        text = render.environment().get_template("registry/config.yml.j2").render(context)
        config = YAML(typ="safe").load(text)
        del config["http"]["tls"]
        config["http"]["host"] = self.url
        return config

    def create(self) -> None:
        config_file = write_yaml(self.root / f"{self.name}.yml", self.config())
        self.container = self.client.containers.run(
            self.image,
            command=["/etc/docker/registry/config.yml"],
            name=self.name,
            detach=True,
            network_mode="host",
            extra_hosts={"host.docker.internal": "127.0.0.1"},  # where the template notifies
            volumes={str(config_file): {"bind": "/etc/docker/registry/config.yml", "mode": "ro"}},
        )
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_for(
            f"registry {self.name}",
            lambda: httpx.get(f"{self.url}/v2/", timeout=1).status_code == 200,
            self.logs,
        )

    def stop(self) -> None:
        self.container.stop(timeout=2)

    def start(self) -> None:
        self.container.start()
        self.wait_ready()

    def restart(self) -> None:
        """Stop and start: the registry's in-memory notification queue is dropped."""
        self.stop()
        self.start()

    def logs(self) -> str:
        with contextlib.suppress(Exception):
            return self.container.logs().decode(errors="replace")
        return ""

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.container.remove(force=True)


@dataclass
class PrimaryService:
    """`python -m gdk_geo.primary`, the real event log and event API."""

    root: Path
    port: int
    registry_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = write_yaml(
            self.root / "config" / "gitlab.yml",
            {
                "gitlab": {"host": "localhost", "port": self.port, "listen_address": "127.0.0.1"},
                "registry": {
                    "api_url": f"http://127.0.0.1:{self.registry_port}",
                    "ca_file": "localhost.crt",
                    "notification_secret": NOTIFICATION_SECRET,
                },
                "geo": {
                    "node_name": "primary",
                    "primary": True,
                    "node_token": NODE_TOKEN,
                    "event_log": {"database": "geo/events.sqlite3"},
                },
            },
        )
        with open(self.root / "service.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gdk_geo.primary", "--config", str(config)],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            "the primary Geo service",
            lambda: httpx.get(f"{self.url}/-/health", timeout=1).status_code == 200,
            self.logs,
        )

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
            self.process = None

    def events(self) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.url}/api/v4/geo/events",
            params={"after": 0, "limit": 1000},
            headers={"Authorization": f"Bearer {NODE_TOKEN}"},
            timeout=5,
        )
        return response.json()["events"]

    def last_event_id(self) -> int:
        return httpx.get(f"{self.url}/-/health", timeout=5).json()["last_event_id"]

    def logs(self) -> str:
        path = self.root / "service.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class GeoSetup:
    primary: Registry
    secondary: Registry
    service: PrimaryService
    root: Path


@pytest.fixture(scope="module")
def geo(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeoSetup]:
    """Two registries and the primary's Geo service, shared by this module's tests."""
    from gdk_geo.image import ensure_registry_image

    image = ensure_registry_image(
        docker_client, "registry:2", Path("/usr/bin/docker-registry"), progress=lambda _: None
    ).name
    root = tmp_path_factory.mktemp("geo")
    suffix = uuid.uuid4().hex[:8]
    service = PrimaryService(root / "primary", free_port(), free_port())
    primary = Registry(
        docker_client,
        image,
        f"gdkgeo-worker-test-{suffix}-primary",
        service.registry_port,
        root,
        notify_port=service.port,
    )
    secondary = Registry(
        docker_client, image, f"gdkgeo-worker-test-{suffix}-secondary", free_port(), root
    )
    try:
        service.start()
        primary.create()
        secondary.create()
        yield GeoSetup(primary, secondary, service, root)
    finally:
        service.stop()
        primary.remove()
        secondary.remove()


# -- the worker ---------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One `python -m gdk_geo.secondary` with its own node root and tracking database."""

    geo: GeoSetup
    root: Path
    backfill_interval: float = 3600
    verification_interval: float = 3600
    enabled: bool = True
    retry: tuple[float, float] = (0.2, 1.0)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tracking_db(self) -> Path:
        return self.root / "geo" / "tracking.sqlite3"

    def write_config(self) -> Path:
        return write_yaml(
            self.root / "config" / "gitlab.yml",
            {
                "gitlab": {"host": "localhost", "port": self.port, "listen_address": "127.0.0.1"},
                "registry": {
                    "api_url": self.geo.secondary.url,
                    "ca_file": "localhost.crt",  # carried always; unused for http URLs
                },
                "geo": {
                    "node_name": "secondary",
                    "primary": False,
                    "node_token": NODE_TOKEN,
                    "primary_node_url": self.geo.service.url,
                    "tracking_database": "geo/tracking.sqlite3",
                    "registry_replication": {
                        "enabled": self.enabled,
                        "primary_api_url": self.geo.primary.url,
                        "backfill_interval": self.backfill_interval,
                        "verification_interval": self.verification_interval,
                        "max_concurrent_repositories": 4,
                        "max_concurrent_blobs": 4,
                    },
                },
            },
        )

    def start(self, wait: bool = True) -> None:
        config = self.write_config()
        base, cap = self.retry
        with open(self.root / "worker.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "gdk_geo.secondary", "--config", str(config)),
                    *("--retry-base", str(base), "--retry-cap", str(cap)),
                ],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            wait_for("the worker's health endpoint", self.health, self.logs)

    def health(self) -> dict[str, Any] | None:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"the worker exited with {self.process.returncode}\n{self.logs()}")
        response = httpx.get(f"{self.url}/-/health", timeout=2)
        return response.json() if response.status_code == 200 else None

    def status_json(self) -> dict[str, Any]:
        """The status JSON with every repository's row (by default it has the failing ones)."""
        url = f"{self.url}/api/v4/geo/replication/status"
        return httpx.get(url, params={"repositories": "all"}, timeout=5).json()

    def status(self) -> StatusSnapshot:
        return StatusSnapshot.from_json(self.status_json())

    def row(self, repository: str) -> RepositoryStatus | None:
        rows = self.status().repositories
        return next((row for row in rows if row.repository == repository), None)

    def wait_state(self, repository: str, state: str) -> RepositoryStatus:
        def probe() -> RepositoryStatus | None:
            row = self.row(repository)
            return row if row and row.state == state else None

        return wait_for(f"{repository} to be {state}", probe, self.logs)

    def stop(self) -> int:
        assert self.process is not None
        code = terminate(self.process)
        self.process = None
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def logs(self) -> str:
        path = self.root / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def workers(geo: GeoSetup, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """A factory of worker processes; all of them are stopped after the test, pass or fail."""
    started: list[WorkerProcess] = []

    def make(**options: Any) -> WorkerProcess:
        worker = WorkerProcess(geo, tmp_path / "secondary", **options)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        if worker.process is not None:
            terminate(worker.process)


def push_announced(geo: GeoSetup, repo: str, tag: str) -> str:
    """Push, and wait until the primary's event log has the push (the registry notifies
    asynchronously: stopping it right after a push could drop the notification)."""
    digest = push_image(geo.primary.url, repo, tag)
    wait_for(
        "the push event",
        lambda: any(e["repository"] == repo for e in geo.service.events()),
        geo.service.logs,
    )
    return digest


@contextlib.contextmanager
def paused(registry: Registry) -> Iterator[None]:
    """Freeze the registry: connections open, nobody answers (a sync hangs mid-flight)."""
    registry.container.pause()
    try:
        yield
    finally:
        registry.container.unpause()


# -- docker tests -----------------------------------------------------------------------------


@pytest.mark.docker
def test_a_push_replicates_through_the_event(geo: GeoSetup, workers) -> None:
    worker = workers()
    worker.start()
    wait_for("the event feed", lambda: worker.status().event_feed.connected, worker.logs)
    wait_for("the start-up backfill", lambda: worker.status().last_backfill_at, worker.logs)
    repo = unique("events/app")

    digest = push_image(geo.primary.url, repo, "v1")

    wait_for(
        "the tag on the secondary",
        lambda: digest_of_tag(geo.secondary.url, repo, "v1") == digest,
        worker.logs,
    )
    worker.wait_state(repo, "synced")
    # Backfill ran once, before the push (its interval is an hour): the event did this.
    assert any(event["repository"] == repo for event in geo.service.events())
    assert worker.stop() == 0
    assert "Traceback" not in worker.logs()


@pytest.mark.docker
def test_cursor_resumes_after_a_restart(geo: GeoSetup, workers) -> None:
    worker = workers()
    worker.start()
    old, new = unique("cursor/old"), unique("cursor/new")
    push_image(geo.primary.url, old, "v1")
    push_image(geo.primary.url, new, "v1")
    worker.wait_state(new, "synced")
    wait_for(
        "the cursor to reach the primary's last event",
        lambda: worker.status().cursor == geo.service.last_event_id(),
        worker.logs,
    )
    first_sync = worker.row(old).last_synced_at
    assert worker.stop() == 0, "SIGTERM is a clean shutdown"

    # While the worker is down: a new tag in an already synced repository. Backfill at start
    # leaves `new` alone (checked a moment ago, interval one hour): only the event can bring v2.
    v2 = push_image(geo.primary.url, new, "v2")
    worker.start()
    wait_for(
        "v2 on the secondary",
        lambda: digest_of_tag(geo.secondary.url, new, "v2") == v2,
        worker.logs,
    )
    worker.wait_state(new, "synced")
    assert worker.status().cursor == geo.service.last_event_id()
    assert worker.row(old).last_synced_at == first_sync, "old events were not replayed"
    assert "Traceback" not in worker.logs()


@pytest.mark.docker
def test_backfill_repairs_a_notification_lost_in_a_registry_restart(geo: GeoSetup, workers) -> None:
    worker = workers(backfill_interval=1)
    worker.start()
    repo = unique("backfill/app")

    geo.service.stop()  # the registry queues the notification in memory...
    try:
        digest = push_image(geo.primary.url, repo, "v1")
        geo.primary.restart()  # ...and loses it here
    finally:
        geo.service.start()

    wait_for(
        "backfill to bring the image",
        lambda: digest_of_tag(geo.secondary.url, repo, "v1") == digest,
        worker.logs,
    )
    assert not any(event["repository"] == repo for event in geo.service.events()), (
        "the notification really was lost, so backfill did this"
    )
    worker.wait_state(repo, "synced")


@pytest.mark.docker
def test_primary_registry_down_fails_with_backoff_then_syncs(geo: GeoSetup, workers) -> None:
    repo = unique("outage/app")
    digest = push_announced(geo, repo, "v1")
    worker = workers(retry=(0.2, 1.0))
    geo.primary.stop()
    try:
        worker.start()

        def failed_twice() -> RepositoryStatus | None:
            row = worker.row(repo)
            return row if row and row.state == "failed" and row.retry_count >= 2 else None

        row = wait_for("repeated failures", failed_twice, worker.logs)
        assert row.last_sync_failure, "the reason is recorded"
        assert row.retry_at > row.updated_at, "a failure waits before its retry"
        assert digest_of_tag(geo.secondary.url, repo, "v1") is None
    finally:
        geo.primary.start()

    worker.wait_state(repo, "synced")
    assert digest_of_tag(geo.secondary.url, repo, "v1") == digest
    row = worker.row(repo)
    assert (row.retry_count, row.last_sync_failure) == (0, None)


@pytest.mark.docker
def test_sigkill_mid_sync_is_recovered_at_restart(geo: GeoSetup, workers) -> None:
    repo = unique("crash/app")
    digest = push_announced(geo, repo, "v1")
    worker = workers()

    def in_flight() -> list[str]:
        return [row.repository for row in worker.status().repositories if row.state == "started"]

    with paused(geo.primary):  # every sync hangs on the frozen primary
        worker.start()
        started = wait_for("syncs in flight", in_flight, worker.logs)
        worker.kill()
    db = sqlite3.connect(worker.tracking_db)
    left = {
        name
        for (name,) in db.execute("SELECT repository FROM repositories WHERE state = 'started'")
    }
    db.close()
    assert left == set(started), "the killed worker left its rows mid-sync"

    worker.start()
    for name in [*started, repo]:
        worker.wait_state(name, "synced")
    assert digest_of_tag(geo.secondary.url, repo, "v1") == digest
    assert "re-queued" in worker.logs()


@pytest.mark.docker
def test_verification_sends_a_tampered_repository_back_to_sync(geo: GeoSetup, workers) -> None:
    repo = unique("verify/app")
    digest = push_image(geo.primary.url, repo, "v1")
    worker = workers(verification_interval=0.5)
    worker.start()
    worker.wait_state(repo, "synced")

    deleted = httpx.delete(f"{geo.secondary.url}/v2/{repo}/manifests/{digest}", timeout=5)
    assert deleted.status_code == 202

    wait_for(
        "verification to restore the tag",
        lambda: digest_of_tag(geo.secondary.url, repo, "v1") == digest,
        worker.logs,
    )
    wait_for(
        "a counted mismatch",
        lambda: worker.status().totals.verification_mismatches >= 1,
        worker.logs,
    )


@pytest.mark.docker
def test_status_json_metrics_and_admin_page_show_the_repositories(geo: GeoSetup, workers) -> None:
    worker = workers()
    worker.start()
    repo = unique("status/app")
    push_image(geo.primary.url, repo, "v1")
    worker.wait_state(repo, "synced")

    raw = worker.status_json()
    assert raw["node"] == "secondary"
    assert raw["lag"] == raw["primary_last_event_id"] - raw["cursor"]
    row = next(row for row in raw["repositories"] if row["repository"] == repo)
    assert {"repository", "state", "retry_count", "last_synced_at"} <= row.keys()
    status = StatusSnapshot.from_json(raw)
    assert status.replication_enabled is True
    assert status.counts["synced"] >= 1
    assert status.primary_last_event_id >= status.cursor >= 1
    assert status.last_event_age_seconds >= 0
    assert status.totals.blobs_copied >= 2

    health = httpx.get(f"{worker.url}/-/health").json()
    assert health == {
        "status": "ok",
        "node": "secondary",
        "cursor": health["cursor"],
        "replication_enabled": True,
    }
    metrics = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(httpx.get(f"{worker.url}/-/metrics").text)
        for sample in family.samples
    }
    assert metrics["gdk_geo_repositories", (("state", "synced"),)] >= 1
    assert metrics["gdk_geo_bytes_copied_total", ()] == status.totals.bytes_copied

    page = httpx.get(f"{worker.url}/admin/geo")
    assert page.headers["content-type"].startswith("text/html")
    assert repo in page.text
    assert "/admin/geo/repositories.json" in page.text, "the page polls its JSON (issue 15)"
    assert "http://" not in page.text.replace(geo.primary.url, ""), "no external assets"


@pytest.mark.docker
def test_sync_once_syncs_named_and_all_repositories(geo: GeoSetup, tmp_path: Path) -> None:
    repo = unique("once/app")
    digest = push_image(geo.primary.url, repo, "v1")
    settings = load_secondary(WorkerProcess(geo, tmp_path / "secondary").write_config())

    seen: list[RepositorySyncResult] = []
    results = asyncio.run(sync_once(settings, [repo], progress=seen.append))
    assert [(r.repository, r.ok) for r in results] == [(repo, True)]
    assert seen == results
    assert digest_of_tag(geo.secondary.url, repo, "v1") == digest
    db = TrackingDB(settings.tracking_db_path)
    assert db.get(repo).state == "synced"
    db.close()

    everything = asyncio.run(sync_once(settings, all_=True))
    assert repo in {result.repository for result in everything}
    assert all(result.ok for result in everything), [r for r in everything if not r.ok]


# -- without docker: the process and the pieces around it ---------------------------------


def _offline_config(root: Path, **replication: Any) -> Path:
    """A secondary gitlab.yml whose registries and primary nobody serves."""
    return write_yaml(
        root / "config" / "gitlab.yml",
        {
            "gitlab": {"host": "localhost", "port": free_port(), "listen_address": "127.0.0.1"},
            "registry": {"api_url": f"http://127.0.0.1:{free_port()}", "ca_file": "localhost.crt"},
            "geo": {
                "node_token": NODE_TOKEN,
                "primary_node_url": f"http://127.0.0.1:{free_port()}",
                "tracking_database": "geo/tracking.sqlite3",
                "registry_replication": {
                    "enabled": True,
                    "primary_api_url": f"http://127.0.0.1:{free_port()}",
                    "backfill_interval": 60,
                    "verification_interval": 300,
                    "max_concurrent_repositories": 2,
                    "max_concurrent_blobs": 2,
                    **replication,
                },
            },
        },
    )


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
    (tmp_path / "geo").write_text("a file where the database directory should be")
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
    assert "localhost.crt does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    config = _offline_config(tmp_path)
    port = json.loads(config.read_text())["gitlab"]["port"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = _run_worker(config)
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_disabled_replication_serves_health_and_syncs_nothing(tmp_path: Path) -> None:
    config = _offline_config(tmp_path, enabled=False)
    port = json.loads(config.read_text())["gitlab"]["port"]
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
    assert _first_user_error(nested) is error
    assert _first_user_error(ValueError()) is None
