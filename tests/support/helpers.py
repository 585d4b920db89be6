"""Test helpers shared by several test modules (not fixtures: plain functions)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from gdk_geo.node.settings import PrimaryServiceSettings, SecondaryWorkerSettings
from gdk_geo.project import Project
from testkit.net import free_ports

FAR_FROM_UTC = "IST-5:30"  # a time zone with a half-hour offset, far from UTC
REPO_ROOT = Path(__file__).resolve().parents[2]  # this file is tests/support/helpers.py

FIXED_SECRETS = {
    "notification_secret": "test-notification-secret-0123456789",
    "node_token": "test-node-token-0123456789",
    "registry_http_secret": "test-registry-http-secret-0123456789",
    "registry_password": "test-registry-password-0123456789",
}


# A shell that starts a job in the background without job control (`make test &` in a
# script, some CI runners) starts it with SIGINT ignored, and an ignored signal stays ignored
# across exec: Python then installs no KeyboardInterrupt handler, and a test that sends
# SIGINT, as a terminal's Ctrl-C, would wait for nothing (or, worse, pass without it). This
# puts Python's handler back before invoke starts, as a terminal user has it.
_CTRL_C_AS_AT_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['invoke', *sys.argv[1:]]; runpy.run_module('invoke', run_name='__main__')"
)


def interruptible_invoke(*args: str) -> list[str]:
    """The command line of `invoke <args>` for a test that sends it SIGINT (Ctrl-C)."""
    return [sys.executable, "-c", _CTRL_C_AS_AT_A_TERMINAL, "-r", str(REPO_ROOT), *args]


def invoke(
    root: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `invoke <args>` as a user would, against the project at `root` (in `env`, a
    client's own environment, when given; else this process's)."""
    env = {**(os.environ if env is None else env), "GDK_GEO_ROOT": str(root), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO_ROOT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def unique_prefix(letter: str) -> str:
    """A container prefix no other run uses (two test runs may share one engine)."""
    return f"gdkgeo-{letter}{uuid.uuid4().hex[:8]}"


def write_gdk_yml(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "gdk.yml"
    path.write_text(text)
    return path


def seed_secrets(root: Path) -> None:
    """Pre-create the generated secrets so renders are byte-for-byte reproducible."""
    secrets = root / ".gdk-geo" / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    for name, value in FIXED_SECRETS.items():
        (secrets / name).write_text(value + "\n")
        (secrets / name).chmod(0o600)


def ports_yml(
    primary: int,
    primary_registry: int,
    secondary: int,
    secondary_registry: int,
    prefix: str = "gdkgeo-test",
) -> str:
    return f"""\
# test project
docker:
  container_prefix: {prefix}
geo:
  primary:
    port: {primary}
    registry:
      port: {primary_registry}
  secondary:
    port: {secondary}
    registry:
      port: {secondary_registry}
"""


def named_nodes_yml(names: tuple[str, ...], prefix: str, each_node: str = "") -> str:
    """A `geo.nodes` gdk.yml: the nodes `names` on free ports, the first one primary (the
    default); `each_node` is added to every node's block."""
    ports = free_ports(2 * len(names))
    lines = [f"docker:\n  container_prefix: {prefix}\ngeo:\n  nodes:"]
    for index, name in enumerate(names):
        service, registry = ports[2 * index], ports[2 * index + 1]
        lines.append(
            f"    {name}:\n      port: {service}\n      registry:\n        port: {registry}"
            + each_node
        )
    return "\n".join(lines) + "\n"


@contextmanager
def running_project(root: Path, letter: str, extra_yml: str = "") -> Iterator[Project]:
    """A scratch project set up with `geo.setup` (own prefix, free ports), destroyed after."""
    ports = free_ports(4)
    with set_up(root, ports_yml(*ports, unique_prefix(letter)) + extra_yml) as project:
        yield project


@contextmanager
def set_up(root: Path, gdk_yml: str) -> Iterator[Project]:
    """The project at `root` with `gdk_yml`, set up with `geo.setup`, destroyed after."""
    write_gdk_yml(root, gdk_yml)
    setup = invoke(root, "geo.setup")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    try:
        yield Project(root)
    finally:
        invoke(root, "geo.destroy", "--yes", "--data")


def in_process_primary_settings(root: Path, secret: str, token: str) -> PrimaryServiceSettings:
    """Settings for the primary's app run in-process (ASGI): no listener, no registry."""
    return PrimaryServiceSettings(
        node_root=root,
        listen_address="127.0.0.1",
        port=0,
        notification_secret=secret,
        node_token=token,
        event_log_path=root / "geo" / "events.sqlite3",
        registry_api_url="https://localhost:5000",
        ca_file=root / "localhost.crt",
    )


def in_process_secondary_settings(root: Path, **values: Any) -> SecondaryWorkerSettings:
    """Settings for the secondary worker's pieces run in-process, `values` replaced.

    Nothing listens and no registry answers at the default URLs: a test that reaches a
    registry names it (`primary_api_url`, `registry_api_url`).
    """
    settings = SecondaryWorkerSettings(
        node_root=root,
        listen_address="127.0.0.1",
        port=0,
        primary_geo_url="http://127.0.0.1:1",
        node_token="token",
        registry_api_url="http://127.0.0.1:2",
        ca_file=root / "localhost.crt",
        tracking_db_path=root / "geo" / "tracking.sqlite3",
        replication_enabled=True,
        primary_api_url="http://127.0.0.1:3",
        backfill_interval=60,
        verification_interval=300,
        max_concurrent_repositories=2,
        max_concurrent_blobs=2,
    )
    return replace(settings, **values)


def promoted_project(root: Path, url: str) -> Project:
    """A two-node project whose recorded roles made the node named `secondary` primary,
    with `url` set by hand as the (now) secondary's primary_api_url."""
    from gdk_geo.project import roles

    replication = f"geo:\n  secondary:\n    registry_replication:\n      primary_api_url: {url}\n"
    write_gdk_yml(root, replication)
    seed_secrets(root)
    roles.write(root / ".gdk-geo", roles.Roles(primary="secondary", generation=1))
    return Project(root)


def api_url_refusal(root: Path, url: str):
    """The ConfigError loading a gdk.yml whose secondary syncs from `url` raises."""
    import pytest

    from gdk_geo.errors import ConfigError
    from gdk_geo.settings import config

    yml = f"geo:\n  secondary:\n    registry_replication:\n      primary_api_url: {url}\n"
    with pytest.raises(ConfigError) as raised:
        config.load(write_gdk_yml(root, yml))
    return raised.value
