"""Nobody gets in, nothing leaks: the secrets and the listeners after a full scenario.

One scratch project lives through what a day of development does to it (pushes, a refused
notification, a refused event poll, a hostile notification, a killed worker, restarts, a
sync, a verify, status, a user error). Afterwards the notification secret and the node token
must appear nowhere a developer pastes from: no log under the data directory, neither
registry's container log, no task output. The files that hold them by design are 0600,
every listener is on 127.0.0.1 only, and no URL taken from an event was ever connected to.
"""

from __future__ import annotations

import json
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faults_kit import DEADLINE, Scratch, kill

from testkit.net import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NOTIFY = "/api/v4/container_registry_event/events"
V1 = "application/vnd.docker.distribution.events.v1+json"

# Files under the data directory that hold a secret because that is their job.
SECRET_HOLDERS = {
    "secrets/notification_secret",
    "secrets/node_token",
    "secrets/registry_http_secret",
    "secrets/registry_password",
    "primary/config/gitlab.yml",
    "primary/registry/config.yml",
    "secondary/config/gitlab.yml",
    "secondary/registry/config.yml",
    "ca/ca.key",
    "primary/localhost.key",
    "secondary/localhost.key",
    "primary/registry_host.key",
    "secondary/registry_host.key",
    "rendered.json",
}


class Trap:
    """A TCP listener that records every connection: a URL pointing here must stay unused."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def trap() -> Iterator[Trap]:
    made = Trap()
    yield made
    made.close()


@pytest.fixture(scope="module")
def day(nodes_up: Scratch, trap: Trap) -> dict[str, str]:
    """Run the day's scenario once; returns every task's output, by command."""
    outputs: dict[str, str] = {}

    def run(*args: str, ok: bool = True) -> None:
        result = nodes_up.invoke(*args)
        if ok:
            assert result.returncode == 0, result.stdout + result.stderr
        outputs[" ".join(args)] = result.stdout + result.stderr

    images = {(f"day/app-{i}", "v1"): nodes_up.push(f"day/app-{i}", "v1") for i in range(2)}
    primary_service = nodes_up.service_url("primary")
    refused = httpx.post(
        primary_service + NOTIFY,
        content=b'{"events": []}',
        headers={"Authorization": "not-the-secret", "Content-Type": V1},
    )
    assert refused.status_code == 401
    wrong_token = httpx.get(
        primary_service + "/api/v4/geo/events", headers={"Authorization": "Bearer not-it"}
    )
    assert wrong_token.status_code == 401
    hostile = hostile_notification(f"http://127.0.0.1:{trap.port}", "day/trap")
    accepted = httpx.post(
        primary_service + NOTIFY,
        content=json.dumps(hostile).encode(),
        headers={"Authorization": nodes_up.secret("notification_secret"), "Content-Type": V1},
    )
    assert accepted.json()["recorded"] == 1  # a valid event, whatever its URL says
    wait_for(
        "the worker to act on the hostile event",
        lambda: "day/trap" in nodes_up.rows(),
        nodes_up.log_tail,
        timeout=DEADLINE,
    )
    kill(nodes_up.service_pid("secondary"))
    run("geo.setup")
    run("geo.restart", "--node", "primary")
    nodes_up.wait_replicated(images)
    run("geo.sync", "--all")
    run("geo.verify")
    run("geo.status")
    run("geo.status", "--json")
    listed = nodes_up.invoke("--list").stdout
    for optional in (("geo.check",), ("geo.logs",)):
        if optional[0] in listed:  # tasks other engineers add; checked when present
            run(*optional, ok=False)
    run(
        "geo.config.set",
        "registry.notification_secret",
        "almost-the-secret but with spaces",
        ok=False,
    )
    return outputs


def hostile_notification(url: str, repository: str) -> dict[str, object]:
    """A well-formed manifest push whose every URL points at `url`."""
    digest = "sha256:" + "ab" * 32
    return {
        "events": [
            {
                "id": "hostile-event-1",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "repository": repository,
                    "tag": "v1",
                    "digest": digest,
                    "url": f"{url}/v2/{repository}/manifests/{digest}",
                },
                "request": {"host": url, "addr": url},
                "source": {"addr": url},
            }
        ]
    }


def secrets_of(nodes_up: Scratch) -> dict[str, str]:
    names = ("notification_secret", "node_token", "registry_password")
    return {name: nodes_up.secret(name) for name in names}


def test_no_task_output_shows_a_secret(nodes_up: Scratch, day: dict[str, str]) -> None:
    for name, value in secrets_of(nodes_up).items():
        for command, output in day.items():
            assert value not in output, f"`invoke {command}` printed the {name}"


def test_a_user_error_about_the_secret_does_not_echo_it(day: dict[str, str]) -> None:
    output = day["geo.config.set registry.notification_secret almost-the-secret but with spaces"]
    assert "registry.notification_secret" in output
    assert "almost-the-secret" not in output


def test_no_log_or_database_holds_a_secret(nodes_up: Scratch, day: dict[str, str]) -> None:
    data_dir = nodes_up.project.data_dir(nodes_up.cfg)
    storage = {nodes_up.node(name).registry_storage for name in ("primary", "secondary")}
    checked = []
    for path in sorted(data_dir.rglob("*")):
        relative = path.relative_to(data_dir).as_posix()
        if (
            not path.is_file()
            or relative in SECRET_HOLDERS
            or any(s in path.parents for s in storage)
        ):
            continue
        content = path.read_bytes()
        for name, value in secrets_of(nodes_up).items():
            assert value.encode() not in content, f"{relative} holds the {name}"
        checked.append(relative)
    assert "primary/log/geo.log" in checked and "secondary/log/geo.log" in checked


def test_no_registry_container_log_holds_a_secret(nodes_up: Scratch, day: dict[str, str]) -> None:
    for node in ("primary", "secondary"):
        log = nodes_up.container(node).logs().decode(errors="replace")
        for name, value in secrets_of(nodes_up).items():
            assert value not in log, f"the {node} registry's container log holds the {name}"


def test_files_holding_secrets_and_keys_are_0600(nodes_up: Scratch, day: dict[str, str]) -> None:
    data_dir = nodes_up.project.data_dir(nodes_up.cfg)
    for relative in sorted(SECRET_HOLDERS):
        mode = stat.S_IMODE((data_dir / relative).stat().st_mode)
        assert mode == 0o600, f"{relative} is {mode:o}"
    assert stat.S_IMODE((data_dir / "secrets").stat().st_mode) & 0o077 == 0


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port`, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(_address(address))
    return found


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)


def test_every_listener_is_on_loopback_only(nodes_up: Scratch, day: dict[str, str]) -> None:
    cfg = nodes_up.cfg
    ports = {
        "primary Geo service": cfg.geo.primary.port,
        "primary registry": cfg.geo.primary.registry.port,
        "secondary Geo worker": cfg.geo.secondary.port,
        "secondary registry": cfg.geo.secondary.registry.port,
    }
    for what, port in ports.items():
        assert listening_addresses(port) == {"127.0.0.1"}, what


def test_urls_in_events_are_never_connected_to(
    nodes_up: Scratch, trap: Trap, day: dict[str, str]
) -> None:
    """The hostile event was recorded and acted on (its repository was synced from the
    configured primary, where it does not exist), yet nothing ever dialled its URL."""
    wait_for(
        "the hostile event's repository to be synced",
        lambda: nodes_up.rows()["day/trap"]["state"] == "synced",
        nodes_up.log_tail,
        timeout=DEADLINE,
    )
    assert trap.connections == 0
