"""The rig of the Geo worker tests: two real registries, the primary's Geo service, workers.

Two registry containers (host networking, 127.0.0.1, plain HTTP) rendered from the real
template, the primary's real Geo service (`python -m gdk_geo.primary`), which the primary
registry notifies on every push, and the worker as a subprocess (`python -m gdk_geo.secondary`).
Plain HTTP is fine here: the worker still carries a `ca_file` (it must), and only uses it for
https URLs.

Test modules take the fixtures as `geo = worker_rig.geo` and `workers = worker_rig.workers`:
`geo` is module-scoped, so each module that does so gets a setup of its own.
"""

from __future__ import annotations

import contextlib
import json
import signal
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
from ruamel.yaml import YAML

from gdk_geo import render
from gdk_geo.secondary.snapshot import RepositoryStatus, StatusSnapshot
from gdk_geo.settings.topology import Node
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
        HTTP: the template's TLS section is dropped (TLS is tested in tests/integration/sync)."""
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
    from gdk_geo.runtime.image import ensure_registry_image

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
