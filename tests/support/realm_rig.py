"""Both Geo services with token auth on, as processes, without registries or Docker.

`start_realms` runs `python -m gdk_geo.primary` and `python -m gdk_geo.secondary` (its
replication disabled: nothing to sync, nobody to sync from) under roots of their own, with
`registry.auth_enabled` and one signing pair, and waits for each `/-/health`. What is tested
here is how each service's HTTP server and `/jwt/auth` answer, as uvicorn runs them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from helpers import REPO_ROOT
from primary_rig import stop
from worker_rig import write_yaml

from gdk_geo.pki import signing
from testkit.net import free_port, wait_for

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

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def realm(self) -> str:
        return f"{self.url}/jwt/auth"

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")


def _registry(root: Path, password: str) -> dict[str, Any]:
    """gitlab.yml's `registry` block as templates/gitlab.yml.j2 renders it with auth on."""
    return {
        "api_url": f"http://127.0.0.1:{free_port()}",
        "ca_file": "localhost.crt",
        "notification_secret": "realm-rig-notification-secret",
        "auth_enabled": True,
        "key": str(root / "localhost.key"),
        "certificate": str(root / "localhost.crt"),
        "issuer": "gitlab-issuer",
        "service": SERVICE,
        "token_expire_delay": 300,
        "username": USER,
        "password": password,
    }


def _gitlab(port: int) -> dict[str, Any]:
    return {"host": "localhost", "port": port, "listen_address": "127.0.0.1"}


def write_configs(root: Path, password: str = PASSWORD) -> dict[str, tuple[Path, int]]:
    """Each node's gitlab.yml and port; both nodes share one signing pair, as after setup."""
    primary_root, secondary_root = root / "primary", root / "secondary"
    signing.ensure_signing_pair(primary_root, secondary_root)
    ports = {"primary": free_port(), "secondary": free_port()}
    primary = {
        "gitlab": _gitlab(ports["primary"]),
        "registry": _registry(primary_root, password),
        "geo": {
            "node_name": "primary",
            "primary": True,
            "node_token": "realm-rig-node-token",
            "event_log": {"database": "geo/events.sqlite3"},
        },
    }
    secondary = {
        "gitlab": _gitlab(ports["secondary"]),
        "registry": _registry(secondary_root, password),
        "geo": {
            "node_token": "realm-rig-node-token",
            "primary_node_url": f"http://127.0.0.1:{ports['primary']}",
            "tracking_database": "geo/tracking.sqlite3",
            "registry_replication": {
                "enabled": False,
                "primary_api_url": f"http://127.0.0.1:{free_port()}",
                "backfill_interval": 60,
                "verification_interval": 300,
                "max_concurrent_repositories": 2,
                "max_concurrent_blobs": 2,
            },
        },
    }
    return {
        "primary": (write_yaml(primary_root / "config" / "gitlab.yml", primary), ports["primary"]),
        "secondary": (
            write_yaml(secondary_root / "config" / "gitlab.yml", secondary),
            ports["secondary"],
        ),
    }


def start(node: str, config: Path, port: int) -> Realm:
    """`python -m gdk_geo.<node>` on `config`, once its /-/health answers."""
    log_file = config.parent.parent / "service.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"gdk_geo.{node}", "--config", str(config)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    realm = Realm(node, f"http://127.0.0.1:{port}", log_file, process)

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


def start_realms(root: Path, password: str = PASSWORD) -> Realms:
    configs = write_configs(root, password)
    primary = start("primary", *configs["primary"])
    try:
        return Realms(primary, start("secondary", *configs["secondary"]))
    except BaseException:
        stop(primary.process)
        raise


def stop_realms(realms: Realms) -> None:
    for realm in realms:
        stop(realm.process)
