"""A scratch gdk-geo project on real nodes, and what the fault scenarios do to it.

Every fault scenario runs against the real thing a developer runs: both registry containers,
the primary's Geo service and the secondary's worker, brought up by `invoke geo.setup` in a
scratch project with its own container prefix and free ports (never the defaults, so a
developer's nodes and other test runs are left alone). Images are generated here and pushed
over verified TLS with the project's own `RegistryClient`, since nothing can be pulled.

Waits are polls with generous deadlines: a fault test proves that something *happens*, never
how fast (speed lives in `make bench`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from helpers import invoke, write_gdk_yml
from registry_login import MintedAuth, minted_tokens

from gdk_geo.project import NodePaths, Project
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.reference import ACCEPT_MANIFESTS
from gdk_geo.runtime import containers, services
from gdk_geo.settings import Settings
from testkit.images import Blob, push_streamed, seeded_blob
from testkit.net import free_port, wait_for

DEADLINE = 180.0  # seconds; a deadline for "it happens", not a speed target

# Fast worker loops, so repairs by backfill and verification happen within seconds.
FAST_REPLICATION = """\
    registry_replication:
      backfill_interval: "2s"
      verification_interval: "5s"
"""


def gdk_yml(prefix: str, extra_secondary: str = FAST_REPLICATION) -> str:
    """A scratch gdk.yml: its own container prefix, four free ports, fast worker loops."""
    return (
        f"# scratch project of tests/e2e/faults\n"
        f"docker:\n  container_prefix: {prefix}\n"
        f"geo:\n"
        f"  primary:\n    port: {free_port()}\n    registry:\n      port: {free_port()}\n"
        f"  secondary:\n    port: {free_port()}\n    registry:\n      port: {free_port()}\n"
        f"{extra_secondary}"
    )


@dataclass(frozen=True)
class Scratch:
    """One scratch project whose nodes `geo.setup` brought up."""

    root: Path

    @property
    def project(self) -> Project:
        return Project(self.root)

    @property
    def cfg(self) -> Settings:
        return self.project.load()

    def invoke(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """`invoke <args>` run as a user would, against this project."""
        return invoke(self.root, *args, timeout=timeout)

    def must(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`invoke <args>`, which must succeed."""
        result = self.invoke(*args)
        assert result.returncode == 0, f"invoke {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result

    def verify_clean(self) -> None:
        """`invoke geo.verify`, as a user would end any scenario: exit 0, nothing differs.

        Verification compares both registries; the worker may still be finishing what the
        fault left behind, so a difference is retried until the deadline.
        """

        def clean() -> subprocess.CompletedProcess[str] | None:
            result = self.invoke("geo.verify")
            return result if result.returncode == 0 else None

        result = wait_for("`invoke geo.verify` to exit 0", clean, self.log_tail, timeout=DEADLINE)
        assert " 0 differ" in result.stdout, result.stdout

    # -- where things are ----------------------------------------------------------------

    def node(self, name: str) -> NodePaths:
        return self.project.node(self.cfg, name)

    @property
    def ca_file(self) -> Path:
        return self.project.trust_dir(self.cfg) / "ca.crt"

    def registry_url(self, node: str) -> str:
        return self.cfg.node(node).registry_url

    def service_url(self, node: str) -> str:
        return self.cfg.node(node).service_url

    def container(self, node: str) -> Any:
        client = containers.engine()
        return client.containers.get(containers.container_name(self.cfg, node))

    def secret(self, name: str) -> str:
        return (self.project.secrets_dir(self.cfg) / name).read_text().strip()

    def service_pid(self, node: str) -> int:
        return int(self.node(node).pidfile.read_text())

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name in ("primary", "secondary"):
            parts.append(
                f"--- {name} geo.log ---\n{services.tail(self.node(name).service_log, lines)}"
            )
        return "\n".join(parts)

    # -- talking to the nodes ------------------------------------------------------------

    def login(self, node: str) -> MintedAuth:
        """Tokens signed with the node's key: they need no Geo service, and the faults
        here stop those services while reading the registries."""
        return MintedAuth(self.project, node)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def push(self, repo: str, tag: str, layers: list[Blob] | None = None) -> str:
        """Push an image to the primary over verified TLS; returns its manifest digest."""
        layers = layers or [seeded_blob(f"{repo}:{tag}:{uuid.uuid4()}", 1024)]

        async def push() -> str:
            async with RegistryClient(
                self.registry_url("primary"),
                ca_file=self.ca_file,
                tokens=minted_tokens(self.project, "primary"),
            ) as client:
                return await push_streamed(client, repo, tag, layers)

        return asyncio.run(push())

    def digest(self, node: str, repo: str, tag: str) -> str | None:
        """The tag's manifest digest on `node`'s registry, None when it has none."""
        response = httpx.head(
            f"{self.registry_url(node)}/v2/{repo}/manifests/{tag}",
            headers={"Accept": ACCEPT_MANIFESTS},
            auth=self.login(node),
            verify=self.tls(),
            timeout=10,
        )
        return (
            response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None
        )

    def events(self) -> list[dict[str, Any]]:
        """The primary's whole Geo event log, read with the node token."""
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            response = httpx.get(
                f"{self.service_url('primary')}/api/v4/geo/events",
                params={"after": after, "limit": 1000},
                headers={"Authorization": f"Bearer {self.secret('node_token')}"},
                timeout=10,
            )
            response.raise_for_status()
            page = response.json()["events"]
            if not page:
                return found
            found.extend(page)
            after = page[-1]["id"]

    def replication(self, node: str = "secondary") -> dict[str, Any]:
        """The worker's status JSON (what `geo.status` reads), with every repository's row."""
        response = httpx.get(
            f"{self.service_url(node)}/api/v4/geo/replication/status",
            params={"repositories": "all"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def rows(self, node: str = "secondary") -> dict[str, dict[str, Any]]:
        """The tracking rows by repository, from the status JSON of `node`'s worker."""
        return {row["repository"]: row for row in self.replication(node)["repositories"]}

    def wait_synced(self, repos: list[str]) -> None:
        """Wait until every repository is tracked as synced."""

        def all_synced() -> bool:
            rows = self.rows()
            return all(rows.get(repo, {}).get("state") == "synced" for repo in repos)

        wait_for(
            f"{len(repos)} repositories to be synced", all_synced, self.log_tail, timeout=DEADLINE
        )

    def wait_replicated(self, images: dict[tuple[str, str], str]) -> None:
        """Wait until every (repo, tag) is on the secondary with the primary's digest."""

        def missing() -> list[tuple[str, str]]:
            return [
                key for key, digest in images.items() if self.digest("secondary", *key) != digest
            ]

        wait_for(
            f"{len(images)} images on the secondary",
            lambda: not missing(),
            self.log_tail,
            timeout=DEADLINE,
        )


def kill(pid: int) -> None:
    """SIGKILL `pid` (one of this project's services, by its pidfile) and wait until it is gone."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # not our child (invoke started it), but just in case
        if not _alive(pid):
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} survived SIGKILL")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def service_processes(paths: NodePaths) -> list[int]:
    """Pids of every process running this node's Geo service (by module and config path).

    Reads /proc rather than trusting the pidfile: a duplicate or orphaned service is exactly
    what an interrupted task could leave behind.
    """
    module = services.MODULES[paths.name]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in cmdline]
        if module in words and str(paths.gitlab_yml) in words and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def scratch_project(root: Path, prefix: str, text: str | None = None) -> Iterator[Scratch]:
    """Write gdk.yml under `root`, yield the project; always `geo.destroy --yes --data` after.

    The setup itself is left to the caller (some scenarios interrupt it on purpose).
    """
    write_gdk_yml(root, text if text is not None else gdk_yml(prefix))
    scratch = Scratch(root)
    try:
        yield scratch
    finally:
        invoke(root, "geo.destroy", "--yes", "--data")
