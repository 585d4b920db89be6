"""Both Geo services with token auth on, as processes, without registries or Docker.

`start_realms` runs `python -m gdk_geo.primary` and `python -m gdk_geo.secondary` (its
replication disabled: nothing to sync, nobody to sync from) under roots of their own, with
`registry.auth_enabled` and one signing pair, and waits for each `/-/health`. What is tested
here is how each service's HTTP server and `/jwt/auth` answer, as uvicorn runs them.

`listen_address` is gdk.yml's: every listener binds it, and the nodes are reached at it
(`hostname`), as on a machine whose nodes others reach; by default 127.0.0.1 and
`localhost`, as set-up renders them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from helpers import REPO_ROOT
from primary_rig import stop
from rendered import render_nodes

from gdk_geo.pki import certs, signing
from testkit.net import free_ports, wait_for

USER = "root"
PASSWORD = "realm-rig-password-0123456789"
SERVICE = "container_registry"


@dataclass
class Realm:
    """One running Geo service and what a test needs to reach its realm."""

    node: str
    url: str
    log_file: Path
    process: subprocess.Popen[bytes]
    config: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def realm(self) -> str:
        return f"{self.url}/jwt/auth"

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")


def write_configs(
    root: Path, password: str = PASSWORD, listen_address: str = ""
) -> dict[str, tuple[Path, int]]:
    """Each node's gitlab.yml, rendered as `geo.reconfigure` renders it (token auth on, the
    secondary's replication off), and its port; both nodes hold the one TLS pair and the one
    signing pair, as after set-up. With a `listen_address`, the nodes listen there and are
    reached there (gdk.yml's `listen_address` and `hostname`)."""
    ports = free_ports(4)
    where = f"hostname: {listen_address}\nlisten_address: {listen_address}\n"
    rendered = render_nodes(
        root,
        (where if listen_address else "")
        + f"geo:\n  primary:\n    port: {ports[0]}\n    registry:\n      port: {ports[1]}\n"
        f"  secondary:\n    port: {ports[2]}\n    registry:\n      port: {ports[3]}\n"
        "    registry_replication:\n      enabled: false\n",
        {"registry_password": password},
    )
    primary, secondary = rendered.node("primary"), rendered.node("secondary")
    data_dir = rendered.project.data_dir(rendered.cfg)
    certs.ensure_certificates(data_dir, rendered.cfg.hostname, primary.root, secondary.root)
    signing.ensure_signing_pair(primary.root, secondary.root)
    return {
        "primary": (primary.gitlab_yml, ports[0]),
        "secondary": (secondary.gitlab_yml, ports[2]),
    }


def start(node: str, config: Path, port: int, host: str = "127.0.0.1") -> Realm:
    """`python -m gdk_geo.<node>` on `config`, once its /-/health answers at `host`."""
    log_file = config.parent.parent / "service.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"gdk_geo.{node}", "--config", str(config)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    realm = Realm(node, f"http://{host}:{port}", log_file, process, config)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the {node} service exited:\n{realm.log_text()}")
        return httpx.get(f"{realm.url}/-/health", timeout=1).status_code == 200

    try:
        wait_for(f"the {node} service's /-/health", healthy, realm.log_text, timeout=30)
    except AssertionError:
        stop(process)
        raise
    return realm


@dataclass
class Realms:
    primary: Realm
    secondary: Realm

    def __iter__(self) -> Iterator[Realm]:
        return iter((self.primary, self.secondary))


def start_realms(root: Path, password: str = PASSWORD, listen_address: str = "") -> Realms:
    configs = write_configs(root, password, listen_address)
    host = listen_address or "127.0.0.1"
    primary = start("primary", *configs["primary"], host=host)
    try:
        return Realms(primary, start("secondary", *configs["secondary"], host=host))
    except BaseException:
        stop(primary.process)
        raise


def stop_realms(realms: Realms) -> None:
    for realm in realms:
        stop(realm.process)
