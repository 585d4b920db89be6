"""The rig of the primary Geo service tests: a real `python -m gdk_geo.primary`, envelopes.

`start_primary` runs the service in a project of its own (its gitlab.yml rendered by the real
code, `rendered.render_nodes`; its log file where the tasks write it) and waits for
/-/health; `Primary` is what a test needs to talk to it. Envelopes are built as
Distribution's notification bridge writes them.

Test modules take the fixture as `primary = primary_rig.primary`: it is module-scoped, so
each module that does so runs a primary of its own.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import REPO_ROOT
from prometheus_client.parser import text_string_to_metric_families
from rendered import edit_yaml, render_nodes

from gdk_geo.node.settings import node_root_of
from gdk_geo.project import NodePaths
from testkit.net import free_port

NOTIFY = "/api/v4/container_registry_event/events"
EVENTS = "/api/v4/geo/events"
V1 = "application/vnd.docker.distribution.events.v1+json"
V2 = "application/vnd.docker.distribution.events.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# --- Running the service ----------------------------------------------------------------


def write_gitlab_yml(root: Path, port: int, secret: str, token: str) -> Path:
    """The primary's gitlab.yml as `geo.reconfigure` renders it for a project at `root` whose
    primary Geo service listens on `port`, with this notification secret and node token.
    No token auth (these tests are about notifications and events). An empty `secret`, which
    rendering never writes, is put in afterwards: the service must refuse it."""
    gdk_yml = f"registry:\n  auth_enabled: false\ngeo:\n  primary:\n    port: {port}\n"
    given = {"notification_secret": secret or "replaced-below", "node_token": token}
    gitlab_yml = render_nodes(root, gdk_yml, given).node("primary").gitlab_yml
    if not secret:
        edit_yaml(gitlab_yml, lambda data: data["registry"].update(notification_secret=""))
    return gitlab_yml


def launch(config: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """`python -m gdk_geo.primary`, its stderr going to `log_file` as the tasks do."""
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gdk_geo.primary", "--config", str(config)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Primary:
    """A running primary service and what a test needs to talk to it."""

    url: str
    secret: str
    token: str
    root: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def notify(
        self, envelope: Any, *, content_type: str = V1, secret: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": self.secret if secret is None else secret}
        headers["Content-Type"] = content_type
        body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        with self.client() as client:
            return client.post(NOTIFY, content=body, headers=headers)

    def events(self, after: int = 0, **params: Any) -> dict[str, Any]:
        with self.client() as client:
            response = client.get(
                EVENTS,
                params={"after": after, **params},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        assert response.status_code == 200, response.text
        return response.json()

    def last_event_id(self) -> int:
        with self.client() as client:
            return client.get("/-/health").json()["last_event_id"]

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")


def start_primary(root: Path) -> Primary:
    """Start the primary of a project at `root` and wait until /-/health answers. Started
    again on the same root, it renders with new secrets and keeps its event log."""
    port = free_port()
    secret, token = f"notify-{secrets.token_hex(16)}", f"node-{secrets.token_hex(16)}"
    config = write_gitlab_yml(root, port, secret, token)
    log_file = NodePaths("primary", node_root_of(config)).service_log
    log_file.parent.mkdir(parents=True, exist_ok=True)
    process = launch(config, log_file)
    primary = Primary(f"http://127.0.0.1:{port}", secret, token, root, log_file, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the primary service exited early:\n{primary.log_text()}")
        try:
            if httpx.get(f"{primary.url}/-/health", timeout=1).status_code == 200:
                return primary
        except httpx.TransportError:
            time.sleep(0.05)
    stop(process)
    pytest.fail(f"the primary service never answered /-/health:\n{primary.log_text()}")


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Primary]:
    """One primary shared by a module's tests; each test uses its own event ids."""
    running = start_primary(tmp_path_factory.mktemp("node") / "primary")
    yield running
    stop(running.process)


# --- Realistic Distribution envelopes -----------------------------------------------------


def digest_of(seed: str) -> str:
    return "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, seed).hex * 2


def distribution_event(
    action: str,
    repository: str,
    *,
    tag: str | None = None,
    media_type: str | None = OCI_MANIFEST,
    digest: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An event as Distribution's notification bridge writes it (fields from its docs)."""
    digest = digest or digest_of(f"{repository}:{tag}:{action}")
    target: dict[str, Any] = {
        "digest": digest,
        "size": 527,
        "length": 527,
        "repository": repository,
        "url": f"http://localhost:5000/v2/{repository}/manifests/{digest}",
    }
    if media_type:
        target["mediaType"] = media_type
    if tag:
        target["tag"] = tag
    return {
        "id": event_id or str(uuid.uuid4()),
        "timestamp": "2024-11-27T10:00:00.123456789Z",
        "action": action,
        "target": target,
        "request": {
            "id": str(uuid.uuid4()),
            "addr": "127.0.0.1:41234",
            "host": "localhost:5000",
            "method": "PUT" if action == "push" else "GET",
            "useragent": "docker/27.3.1 go/go1.22.7",
        },
        "actor": {},
        "source": {"addr": "localhost:5000", "instanceID": str(uuid.uuid4())},
    }


def envelope(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


def unique_repository(prefix: str = "group") -> str:
    return f"{prefix}/app-{uuid.uuid4().hex[:12]}"


def metric(primary: Primary, name: str) -> float:
    """One sample of /-/metrics, read with Prometheus' own parser."""
    with primary.client() as client:
        text = client.get("/-/metrics").text
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert name in samples, f"{name} not in /-/metrics:\n{text}"
    return samples[name]


def polls_waiting(primary: Primary) -> int:
    """How many long-polls of the event API wait in the service now."""
    return int(metric(primary, "gdk_geo_event_polls_waiting"))


def wait_for_polls(primary: Primary, count: int, timeout: float = 10) -> None:
    """Until at least `count` long-polls wait in the service: a poll a thread sent is only
    known to have reached it once the service counts it."""
    deadline = time.monotonic() + timeout
    while polls_waiting(primary) < count:
        assert time.monotonic() < deadline, f"fewer than {count} long-polls ever waited"
        time.sleep(0.01)
