"""Second hosts for the tests: Docker engines in network namespaces of their own.

What a site is and how one is made is `testkit.sites` (the benchmark makes them too):
`prepare-site up N`, beside the checkout as CI has it, starts a Docker engine inside
namespace `gdkgeo-siteN`, reached from here only at 198.18.N.2; this machine is 198.18.0.1
to it. The tests use sites of their own numbers (`TEST_SITES`), never the ones a developer's
project would use, and bring them up themselves (`up` is idempotent: CI has brought them up
already). Only root can make namespaces: elsewhere the tests that need a site skip, saying
so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testkit import sites
from testkit.net import free_ports
from testkit.sites import HOME_ADDRESS, Site, unavailable

__all__ = ["HOME_ADDRESS", "TCP_SITE", "UNIX_SITE", "Site", "forget_docker_trust", "site_up"]

# The sites the suite uses: one reached over its Unix socket, one over TCP (as a remote
# engine is). .ci/run brings up the same numbers.
UNIX_SITE, TCP_SITE = 11, 12
DOCKER_CERTS_D = Path("/etc/docker/certs.d")


def site_up(number: int, *, tcp: bool = False) -> Site:
    """Site `number` up (idempotent), or the test skipped saying why it cannot be."""
    why = unavailable()
    if why:
        pytest.skip(why)
    try:
        return sites.site_up(number, tcp=tcp)
    except sites.SiteError as exc:
        pytest.fail(str(exc))


def forget_docker_trust(addresses: list[str]) -> None:
    """Remove the CA files `geo.login` gave Docker's daemon for these registries."""
    for address in addresses:
        shutil.rmtree(DOCKER_CERTS_D / address, ignore_errors=True)


def apart_yml(prefix: str, *remote: tuple[str, str, str]) -> str:
    """A gdk.yml of nodes apart: `primary` on this machine's engine at `HOME_ADDRESS`, then
    one node for each (name, address, docker.host), each on free ports, backfilling every 5 s."""
    ports = free_ports(2 * (1 + len(remote)))
    lines = [
        f"docker:\n  container_prefix: {prefix}\ngeo:\n  nodes:",
        f"    primary:\n      port: {ports[0]}\n      registry: {{port: {ports[1]}}}",
        f"      address: {HOME_ADDRESS}",
    ]
    for index, (name, address, docker_host) in enumerate(remote, 1):
        service, registry = ports[2 * index], ports[2 * index + 1]
        lines += [
            f"    {name}:\n      port: {service}\n      registry: {{port: {registry}}}",
            f"      address: {address}",
            f'      docker: {{host: "{docker_host}"}}',
            "      registry_replication: {backfill_interval: 5s}",
        ]
    return "\n".join(lines) + "\n"
