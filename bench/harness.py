"""A scratch gdk-geo project for the benchmarks, and the commands they time.

The benchmarks run on the project's own nodes (real containers, real TLS, the real worker)
in a scratch project with its own container prefix and free ports, so a developer's
environment can stay up while `make bench` runs. A node may run on an engine of its own (a
site, docs/sites.md): the project's own code (`Placement`) reaches what it runs there, and
what the bench does to a node's files (empty it, record its repositories as synced) runs
where those files are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from ruamel.yaml import YAML

from gdk_geo.node.settings import TokenAuthSettings, load_token_auth
from gdk_geo.node.token_auth import ALL_ACTIONS, minter_for, tool_tokens
from gdk_geo.ops import lifecycle
from gdk_geo.project import REPO_ROOT, TRACKING_DB, Project
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.tokens import Access
from gdk_geo.runtime import containers, services, sites
from gdk_geo.runtime.placement import Placement
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


# Python the bench runs where a node's files are (`BenchProject._python_at`): its arguments
# are the node root and the registry storage as seen there, then the caller's.
_EMPTY = """
import shutil, sys
from pathlib import Path
root, storage = map(Path, sys.argv[1:3])
for directory in (storage, root / "geo"):
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
"""
_MARK_SYNCED = """
import sys
from pathlib import Path
from gdk_geo.secondary.tracking import TrackingDB
db = TrackingDB(Path(sys.argv[1]) / sys.argv[3])
try:
    names = sys.argv[4:]
    db.start(names)
    for name in names:
        db.finish_success(name, None)
finally:
    db.close()
"""


def _node_block(lines: str) -> str:
    """Extra settings of one node, indented into its section of gdk.yml."""
    return "".join(f"    {line}\n" for line in lines.splitlines())


class BenchProject:
    """A scratch project: both nodes, helpers to pause the worker and empty a registry.

    `node_yml` adds settings to a node's section (`{"secondary": "address: …"}`): where it
    runs, for a node on an engine of its own.
    """

    def __init__(
        self,
        workdir: Path,
        extra_yml: str = "",
        prefix: str = "gdkgeo-bench",
        node_yml: Mapping[str, str] | None = None,
    ) -> None:
        root = workdir / "project"
        root.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        more = node_yml or {}
        (root / "gdk.yml").write_text(
            f"docker:\n  container_prefix: {prefix}\n"
            "geo:\n"
            f"  primary:\n    port: {free_port()}\n    registry:\n      port: {free_port()}\n"
            + _node_block(more.get("primary", ""))
            + f"  secondary:\n    port: {free_port()}\n    registry:\n      port: {free_port()}\n"
            "    registry_replication:\n      max_concurrent_repositories: 8\n"
            + _node_block(more.get("secondary", ""))
            + extra_yml
        )
        self.project = Project(root)
        self.cfg = self.project.load()
        self.placement = Placement(self.project, self.cfg)
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
        self.placement.stop_service(node)

    def start_service(self, node: str) -> None:
        """Start the node's Geo service (a process here, a container on a site) and wait
        until it answers; an error with its last log lines when it does not."""
        self.placement.converge_service(node, changed=False)
        lifecycle.wait_healthy_service(self.placement, node)

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
        self._python_at("secondary", _MARK_SYNCED, TRACKING_DB, *repositories)
        self.start_worker()

    def worker_process(self) -> psutil.Process:
        """The secondary's running worker process, on this machine's engine only."""
        if self.placement.is_remote("secondary"):
            raise RuntimeError("the secondary's worker is a container on another engine")
        pid = services.state(self.paths("secondary")).pid
        if pid is None:
            raise RuntimeError("the secondary's worker does not run")
        return psutil.Process(pid)

    def worker_cpu_seconds(self) -> float:
        """CPU the secondary's running worker has used so far (part of a sync now): its
        process's here, its container's cgroup on an engine of its own."""
        if self.placement.is_remote("secondary"):
            return self._container_cpu_seconds(
                "secondary", self.placement.names("secondary").service
            )
        times = self.worker_process().cpu_times()
        return times.user + times.system

    def admin_url(self, path: str = "/admin/geo") -> str:
        return f"{self.cfg.node('secondary').service_url}{path}"

    def _container_cpu_seconds(self, node: str, name: str) -> float:
        """CPU container `name` on `node`'s engine has used so far (its cgroup)."""
        container = self.placement.client(node).containers.get(name)
        return container.stats(stream=False)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9

    def registry_cpu_seconds(self, node: str) -> float:
        """CPU the node's registry container has used so far (its cgroup, via its engine)."""
        return self._container_cpu_seconds(node, containers.container_name(self.cfg, node))

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
    def _down(self, node: str) -> Iterator[None]:
        """The node's registry container stopped (and its Geo service, which would only see
        a registry that is not there); started again and healthy afterwards. The Geo
        service stays stopped: callers start it when they want it."""
        client = self.placement.client(node)
        name = containers.container_name(self.cfg, node)
        self.placement.stop_service(node)
        containers.stop(client, name, self.root, timeout=5)
        try:
            yield
        finally:
            client.containers.get(name).start()
            lifecycle.wait_healthy_registry(self.placement, node)

    @contextlib.contextmanager
    def registry_stopped(self, node: str) -> Iterator[Path]:
        """The node's registry stopped as `_down` stops it, yielding its storage directory
        to write in Distribution's layout (`testkit.storage`): a node on this machine's
        engine only, whose storage is a directory here."""
        if self.placement.is_remote(node):
            raise RuntimeError(f"node {node}'s storage is a volume on another engine")
        with self._down(node):
            yield self.paths(node).registry_storage

    def _python_at(self, node: str, code: str, *args: str) -> None:
        """Run Python `code` where node `node`'s files are, given its node root and its
        registry storage as they are seen there, then `args`: `python -c` here for a node on
        this machine's engine; on an engine of its own, a throwaway container of the
        services image (the node's service container's) with the node's volumes mounted,
        as its registry and service mount them."""
        if not self.placement.is_remote(node):
            paths = self.paths(node)
            command = [sys.executable, "-c", code, str(paths.root), str(paths.registry_storage)]
            done = subprocess.run([*command, *args], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"python on node {node} failed:\n{done.stderr[-2000:]}")
            return
        client, names, root = self.placement.client(node), self.placement.names(node), self.root
        storage = sites.registry_volumes(names)[names.storage_volume]["bind"]
        service = containers.find_ours(client, names.service, root)
        if service is None:
            raise RuntimeError(f"node {node} has no service container {names.service}")
        client.containers.run(
            service.image.id,
            ["-c", code, sites.NODE_ROOT, storage, *args],
            volumes={
                names.root_volume: {"bind": sites.NODE_ROOT, "mode": "rw"},
                names.storage_volume: {"bind": storage, "mode": "rw"},
            },
            network_mode="none",
            labels=sites.labels(node, root),
            remove=True,
        )

    @property
    def root(self) -> str:
        return str(self.project.root)

    def empty_node(self, node: str, fill: Callable[[Path], object] | None = None) -> None:
        """Remove every repository (and the Geo database) of a node, then let `fill` write
        new content straight into its storage; its registry comes back, its Geo service
        stays stopped.

        A secondary's worker started here would begin backfilling at once, and a sync timed
        after it would find part of its work done (figures before this fix were flattered
        that way); callers start the service when they want it.
        """
        if fill is not None and self.placement.is_remote(node):
            raise RuntimeError(f"node {node}'s storage is a volume on another engine")
        with self._down(node):
            self._python_at(node, _EMPTY)
            if fill is not None:
                fill(self.paths(node).registry_storage)

    # Baselines.

    def skopeo_sync(
        self, repositories: list[str], destination: str, source: str | None = None
    ) -> Timed:
        """`skopeo sync` of every tag of `repositories` into `destination` (one process),
        read from the primary's registry at `source` (host:port; by default the primary's
        own address, or a link relay's route to it, whose certificate the same CA signs)."""
        source = source or self.cfg.node("primary").registry_address
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


@contextlib.contextmanager
def bench_project(
    extra_yml: str, prefix: str, node_yml: Mapping[str, str] | None = None
) -> Iterator[BenchProject]:
    """A bench project set up in a scratch directory, destroyed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gdk-geo-bench-") as workdir:
        bench = BenchProject(Path(workdir), extra_yml, prefix, node_yml)
        try:
            bench.setup()
            yield bench
        finally:
            bench.destroy()
