"""A scratch gdk-geo project for the benchmarks, and the commands they time.

The benchmarks run on the project's own nodes (real containers, real TLS, the real worker)
in a scratch project with its own container prefix and free ports, so a developer's
environment can stay up while `make bench` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from ruamel.yaml import YAML

from gdk_geo.node.settings import TokenAuthSettings, load_token_auth
from gdk_geo.node.token_auth import ALL_ACTIONS, minter_for, tool_tokens
from gdk_geo.ops import lifecycle
from gdk_geo.project import REPO_ROOT, Project
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.tokens import Access
from gdk_geo.runtime import containers, health, services
from gdk_geo.runtime.placement import Placement
from gdk_geo.secondary.tracking import TrackingDB
from testkit.net import free_port


@dataclass(frozen=True)
class Timed:
    """A command's wall time, CPU time (user + system) and peak RSS (KiB, VmHWM after exec)."""

    seconds: float
    max_rss_kib: int
    returncode: int
    output: str
    cpu_seconds: float = 0.0


def _high_water_mark(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def run_timed(command: list[str], env: dict[str, str] | None = None) -> Timed:
    """Run `command`, measuring wall time and the peak RSS of exactly that program.

    The peak is read from /proc (VmHWM) while it runs, not from wait4: Linux carries the
    parent's RSS at fork over into the child's ru_maxrss, so a big benchmark process made
    a small `geo.sync` look like it used 400 MiB.
    """
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = 0

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, _high_water_mark(process.pid) or 0)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read() if process.stdout else ""
    process.wait()
    seconds = time.perf_counter() - start
    sampler.join()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children.ru_utime - children_before.ru_utime) + (
        children.ru_stime - children_before.ru_stime
    )
    return Timed(seconds, peak, process.returncode, output, cpu)


class BenchProject:
    """A scratch project: both nodes, helpers to pause the worker and empty a registry."""

    def __init__(self, workdir: Path, extra_yml: str = "", prefix: str = "gdkgeo-bench") -> None:
        root = workdir / "project"
        root.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        (root / "gdk.yml").write_text(
            f"docker:\n  container_prefix: {prefix}\n"
            "geo:\n"
            f"  primary:\n    port: {free_port()}\n    registry:\n      port: {free_port()}\n"
            f"  secondary:\n    port: {free_port()}\n    registry:\n      port: {free_port()}\n"
            "    registry_replication:\n      max_concurrent_repositories: 8\n" + extra_yml
        )
        self.project = Project(root)
        self.cfg = self.project.load()
        self.env = {**os.environ, "GDK_GEO_ROOT": str(root)}

    # The nodes.

    def invoke(self, *args: str) -> Timed:
        return run_timed([sys.executable, "-m", "invoke", "-r", str(REPO_ROOT), *args], self.env)

    def setup(self) -> None:
        lifecycle.setup(self.project, say=lambda _message: None)

    def destroy(self) -> None:
        lifecycle.destroy(self.project, data=True)

    def paths(self, node: str):
        return self.project.node(self.cfg, node)

    def registry_url(self, node: str) -> str:
        return self.cfg.node(node).registry_url

    def auth(self, node: str) -> TokenAuthSettings:
        """The node's token auth, as its Geo service reads it from `gitlab.yml`."""
        paths = self.paths(node)
        return load_token_auth(YAML(typ="safe").load(paths.gitlab_yml.read_text()), paths.root)

    def client(self, node: str, **kwargs) -> RegistryClient:
        """A client signing its own tokens with the node's key, as the Geo worker does."""
        return RegistryClient(
            self.registry_url(node),
            ca_file=self.paths(node).certificate,
            tokens=tool_tokens(self.auth(node), ALL_ACTIONS),
            **kwargs,
        )

    def bearer(self, node: str, access: list[Access]) -> dict[str, str]:
        """`Authorization` for a plain HTTP client (one token for all of `access`), or {}."""
        auth = self.auth(node)
        if not auth.enabled:
            return {}
        token = minter_for(auth).mint("bench", access).token
        return {"Authorization": f"Bearer {token}"}

    @property
    def trust_dir(self) -> Path:
        return self.project.trust_dir(self.cfg)

    def stop_service(self, node: str) -> None:
        services.stop(self.paths(node))

    def start_service(self, node: str) -> None:
        services.start(self.paths(node))
        probe = health.wait_until(lambda: health.probe_service(self.cfg.node(node).service_url), 30)
        if not probe.ok:
            log = services.tail(self.paths(node).service_log, 20)
            raise RuntimeError(f"the {node} Geo service did not come up: {probe.detail}\n{log}")

    def stop_worker(self) -> None:
        self.stop_service("secondary")

    def start_worker(self) -> None:
        self.start_service("secondary")

    def start_idle_worker(self) -> None:
        """A running, warm worker with nothing to do, so a timed `geo.sync` is all the work
        and the worker does it: the primary's Geo service is stopped (no events reach the
        worker) and every repository of the primary is recorded as synced and checked just
        now (nothing for its first backfill). `start_service("primary")` ends it."""
        self.stop_worker()
        self.stop_service("primary")

        async def catalog() -> list[str]:
            async with self.client("primary") as primary:
                return await primary.catalog()

        repositories = asyncio.run(catalog())
        db = TrackingDB(self.paths("secondary").tracking_db)
        try:
            db.start(repositories)
            for name in repositories:
                db.finish_success(name, None)
        finally:
            db.close()
        self.start_worker()

    def worker_process(self) -> psutil.Process:
        """The secondary's running worker (its CPU time and RSS are part of a sync now)."""
        pid = services.state(self.paths("secondary")).pid
        if pid is None:
            raise RuntimeError("the secondary's worker does not run")
        return psutil.Process(pid)

    def admin_url(self, path: str = "/admin/geo") -> str:
        return f"{self.cfg.node('secondary').service_url}{path}"

    def registry_cpu_seconds(self, node: str) -> float:
        """CPU the node's registry container has used so far (its cgroup, via the engine)."""
        container = containers.engine().containers.get(containers.container_name(self.cfg, node))
        return container.stats(stream=False)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9

    def registries_cpu_seconds(self) -> float:
        """CPU both registry containers have used so far, summed."""
        return self.registry_cpu_seconds("primary") + self.registry_cpu_seconds("secondary")

    def worker_status(self) -> dict | None:
        url = f"{self.cfg.node('secondary').service_url}/api/v4/geo/replication/status"
        try:
            return httpx.get(url, timeout=5).json()
        except httpx.HTTPError:
            return None

    def worker_counts(self) -> dict | None:
        """The counts per state, from one row of the admin page's JSON: the full status has
        every repository, which at 5,000 would make the polling itself the load."""
        try:
            return httpx.get(
                self.admin_url("/admin/geo/repositories.json?per_page=1"), timeout=5
            ).json()
        except httpx.HTTPError:
            return None

    @contextlib.contextmanager
    def registry_stopped(self, node: str) -> Iterator[Path]:
        """The node's registry container stopped (and its Geo service, which would only see
        a registry that is not there), yielding its storage directory to write in
        Distribution's layout (`testkit.storage`); started again and healthy afterwards.
        The Geo service stays stopped: callers start it when they want it."""
        client = containers.engine()
        paths = self.paths(node)
        name = containers.container_name(self.cfg, node)
        services.stop(paths)
        containers.stop(client, name, str(self.project.root), timeout=5)
        try:
            yield paths.registry_storage
        finally:
            client.containers.get(name).start()
            lifecycle.wait_healthy_registry(Placement(self.project, self.cfg), node)

    def empty_node(self, node: str, fill: Callable[[Path], object] | None = None) -> None:
        """Remove every repository (and the Geo database) of a node, then let `fill` write
        new content straight into its storage; its registry comes back, its Geo service
        stays stopped.

        A secondary's worker started here would begin backfilling at once, and a sync timed
        after it would find part of its work done (figures before this fix were flattered
        that way); callers start the service when they want it.
        """
        geo = self.paths(node).root / "geo"
        with self.registry_stopped(node) as storage:
            shutil.rmtree(storage, ignore_errors=True)
            shutil.rmtree(geo, ignore_errors=True)
            storage.mkdir(parents=True)
            geo.mkdir()
            if fill is not None:
                fill(storage)

    # Baselines.

    def skopeo_sync(self, repositories: list[str], destination: str) -> Timed:
        """`skopeo sync` of every tag of `repositories` into `destination` (one process)."""
        source = self.cfg.node("primary").registry_address
        lines = [f"{source}:", f"  cert-dir: {self.trust_dir}", "  images:"]
        lines += [f"    {repo}: []" for repo in repositories]
        spec = self.workdir / "skopeo-sync.yml"
        spec.write_text("\n".join(lines) + "\n")
        target = f"{self.cfg.node('secondary').registry_address}/{destination}"
        timed = run_timed(
            [
                "skopeo",
                "sync",
                "--all",
                "--src",
                "yaml",
                "--dest",
                "docker",
                "--dest-cert-dir",
                str(self.trust_dir),
                *self._skopeo_tokens(repositories, destination),
                str(spec),
                target,
            ]
        )
        if timed.returncode != 0:  # a failed baseline looks fast: stop rather than compare
            raise RuntimeError(f"skopeo sync failed:\n{timed.output[-2000:]}")
        return timed

    def _skopeo_tokens(self, repositories: list[str], destination: str) -> list[str]:
        """With auth on, one token each way as the worker would mint them: skopeo
        reads the primary and writes the secondary, where users may not push."""
        if not self.auth("primary").enabled:
            return []
        pull = [Access("repository", repo, ("pull",)) for repo in repositories]
        # skopeo sync writes <destination>/<last component of the name>
        push = [
            Access("repository", f"{destination}/{r.rsplit('/', 1)[-1]}", ("pull", "push"))
            for r in repositories
        ]
        source = self.bearer("primary", pull)["Authorization"].split(" ", 1)[1]
        target = self.bearer("secondary", push)["Authorization"].split(" ", 1)[1]
        return ["--src-registry-token", source, "--dest-registry-token", target]
