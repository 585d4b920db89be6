"""The rig of the Geo worker tests: two real registries, the primary's Geo service, workers.

Two registry containers (host networking, 127.0.0.1, plain HTTP), the primary's real Geo
service (`python -m gdk_geo.primary`), which the primary registry notifies on every push, and
the worker as a subprocess (`python -m gdk_geo.secondary`). Every one of them reads the files
the real code renders (`rendered.render_nodes`, from the gdk.yml `rig_gdk_yml` writes), with
one change made where it is made: plain HTTP instead of TLS, so no certificates are needed.
The worker still carries a `ca_file` (it must), and only uses it for https URLs.

Test modules take the fixtures as `geo = worker_rig.geo` and `workers = worker_rig.workers`:
`geo` is module-scoped, so each module that does so gets a setup of its own.
"""

from __future__ import annotations

import contextlib
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
from rendered import edit_yaml, render_nodes

from gdk_geo.project import NodePaths, Project
from gdk_geo.secondary.snapshot import RepositoryStatus, StatusSnapshot
from gdk_geo.settings import Settings
from testkit.images import push_image
from testkit.net import free_port, wait_for

NODE_TOKEN = "test-node-token"
NOTIFICATION_SECRET = "test-notification-secret"
SECRETS = {"node_token": NODE_TOKEN, "notification_secret": NOTIFICATION_SECRET}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


# -- helpers ----------------------------------------------------------------------------------


def digest_of_tag(registry_url: str, repo: str, tag: str) -> str | None:
    response = httpx.head(
        f"{registry_url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}, timeout=5
    )
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rig_gdk_yml(
    service: int, primary_registry: int, worker: int, secondary_registry: int, replication: str = ""
) -> str:
    """The rig's gdk.yml: its ports, registries without token auth (the engine is under test
    here, not token auth) and quick redelivery of notifications (a test restarts the primary
    service under the registry); `replication` holds lines of the secondary's
    `registry_replication:` section."""
    text = (
        "registry:\n  auth_enabled: false\n"
        '  notifications:\n    timeout: "500ms"\n    threshold: 5\n    backoff: "1s"\n'
        f"geo:\n  primary:\n    port: {service}\n    registry:\n      port: {primary_registry}\n"
        f"  secondary:\n    port: {worker}\n    registry:\n      port: {secondary_registry}\n"
    )
    return text + (f"    registry_replication:\n{replication}" if replication else "")


def go_duration(seconds: float) -> str:
    """Seconds as a gdk.yml duration (Go's syntax): 0.5 is "500ms"."""
    return f"{round(seconds * 1000)}ms"


def over_http(url: str) -> str:
    """A rendered https URL of the rig's registries, as the rig serves it (plain HTTP)."""
    return url.replace("https://", "http://", 1)


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
    node: NodePaths  # the node whose rendered registry/config.yml it serves with
    port: int
    container: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_over_http(self, config: dict[str, Any]) -> None:
        """The rendered config, served over plain HTTP: the template's TLS section is dropped
        (TLS is tested in tests/integration/sync) and the URL it builds is http."""
        config["http"].pop("tls", None)
        config["http"]["host"] = self.url

    def create(self) -> None:
        config_file = edit_yaml(self.node.registry_config, self.serve_over_http)
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
    """`python -m gdk_geo.primary` on the primary's rendered gitlab.yml: the real event log
    and event API."""

    node: NodePaths
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        return self.node.root

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = edit_yaml(
            self.node.gitlab_yml,
            lambda data: data["registry"].update(api_url=over_http(data["registry"]["api_url"])),
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
    service_port, primary_port, secondary_port = free_port(), free_port(), free_port()
    # The secondary's worker port here is a placeholder: each worker renders its own.
    gdk_yml = rig_gdk_yml(service_port, primary_port, free_port(), secondary_port)
    nodes = render_nodes(root, gdk_yml, SECRETS)
    service = PrimaryService(nodes.node("primary"), service_port)
    primary = Registry(
        docker_client,
        image,
        f"gdkgeo-worker-test-{suffix}-primary",
        nodes.node("primary"),
        primary_port,
    )
    secondary = Registry(
        docker_client,
        image,
        f"gdkgeo-worker-test-{suffix}-secondary",
        nodes.node("secondary"),
        secondary_port,
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
    """One `python -m gdk_geo.secondary` with its own project, node root and tracking
    database: `root` is the project its secondary's gitlab.yml is rendered in."""

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
    def node(self) -> NodePaths:
        """The secondary's node root in the project at `root` (gdk.yml's default data_dir)."""
        return Project(self.root).node(Settings(), "secondary")

    @property
    def tracking_db(self) -> Path:
        return self.node.root / "geo" / "tracking.sqlite3"

    def write_config(self) -> Path:
        """Render the secondary's gitlab.yml for this worker, its registries over http."""
        replication = (
            f"      enabled: {str(self.enabled).lower()}\n"
            f"      backfill_interval: {go_duration(self.backfill_interval)}\n"
            f"      verification_interval: {go_duration(self.verification_interval)}\n"
            "      max_concurrent_repositories: 4\n"
            "      max_concurrent_blobs: 4\n"
        )
        gdk_yml = rig_gdk_yml(
            self.geo.service.port,
            self.geo.primary.port,
            self.port,
            self.geo.secondary.port,
            replication,
        )
        gitlab_yml = render_nodes(self.root, gdk_yml, SECRETS).node("secondary").gitlab_yml

        def over_http_everywhere(data: dict[str, Any]) -> None:
            data["registry"]["api_url"] = over_http(data["registry"]["api_url"])
            replication = data["geo"]["registry_replication"]
            replication["primary_api_url"] = over_http(replication["primary_api_url"])

        return edit_yaml(gitlab_yml, over_http_everywhere)

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
