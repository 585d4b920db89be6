"""Second hosts for the tests: Docker engines in network namespaces of their own.

`../shared/ci/prepare-site up N` (beside the checkout, as CI has it) starts a Docker engine
inside namespace `gdkgeo-siteN`, reached from here only at 198.18.N.2; this machine is
198.18.0.1 to it. The tests use sites of their own numbers (`TEST_SITES`), never the ones
a developer's project would use, and bring them up themselves (`up` is idempotent: CI has
brought them up already). Only root can make namespaces: elsewhere the tests that need a
site skip, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PREPARE_SITE = Path(__file__).resolve().parents[2].parent / "shared" / "ci" / "prepare-site"
HOME_ADDRESS = "198.18.0.1"
# The sites the suite uses: one reached over its Unix socket, one over TCP (as a remote
# engine is). .ci/run brings up the same numbers.
UNIX_SITE, TCP_SITE = 11, 12
DOCKER_CERTS_D = Path("/etc/docker/certs.d")


@dataclass(frozen=True)
class Site:
    number: int
    docker_host: str  # unix:///run/gdkgeo-siteN/docker.sock
    address: str  # 198.18.N.2
    tcp_host: str = ""  # tcp://198.18.N.2:2375 when the site listens on TCP

    def down(self) -> None:
        _prepare("down", self.number)

    def up(self) -> Site:
        return site_up(self.number, tcp=bool(self.tcp_host))


def _prepare(command: str, number: int, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(PREPARE_SITE), command, str(number)],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def unavailable() -> str | None:
    """Why no site can be made here, or None."""
    if not PREPARE_SITE.exists():
        return f"{PREPARE_SITE} is not here"
    if os.geteuid() != 0:
        return "prepare-site makes network namespaces: it must run as root (CI does)"
    if shutil.which("nsenter") is None or shutil.which("dockerd") is None:
        return "nsenter and dockerd are needed to start a site's engine"
    return None


def site_up(number: int, *, tcp: bool = False) -> Site:
    """Site `number` up (idempotent), or the test skipped saying why it cannot be."""
    why = unavailable()
    if why:
        pytest.skip(why)
    done = _prepare("up", number, SITE_TCP="1" if tcp else "0")
    assert done.returncode == 0, f"prepare-site up {number}:\n{done.stdout}{done.stderr}"
    printed = dict(
        line.split("=", 1) for line in done.stdout.splitlines() if "=" in line and " " not in line
    )
    return Site(
        number,
        printed["DOCKER_HOST"],
        printed["SITE_ADDRESS"],
        printed.get("DOCKER_TCP_HOST", ""),
    )


def forget_docker_trust(addresses: list[str]) -> None:
    """Remove the CA files `geo.login` gave Docker's daemon for these registries."""
    for address in addresses:
        shutil.rmtree(DOCKER_CERTS_D / address, ignore_errors=True)
