"""The benchmark scenarios. Each returns rows measured side by side in the same run."""

from __future__ import annotations

import asyncio
import os
import ssl
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

from bench.harness import BenchProject
from gdk_geo.registry.tokens import Access
from testkit.images import Blob, file_blob, push_streamed, random_blob

MiB = 1 << 20


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    scenario: str
    measure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "-"}[self.met]


def _ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}×" if baseline else "-"


async def _bounded(jobs: Iterable[Awaitable], limit: int = 8) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(job) for job in jobs))


def _sync_ours(bench: BenchProject, repositories: list[str]):
    args = ["geo.sync"] + [arg for repo in repositories for arg in ("--repo", repo)]
    result = bench.invoke(*args)
    if result.returncode != 0:
        raise RuntimeError(f"geo.sync failed:\n{result.output[-2000:]}")
    return result


@dataclass(frozen=True)
class Synced:
    """A timed `geo.sync` and the CPU spent on it: its own process's and both registries'."""

    seconds: float
    own_cpu: float
    registries_cpu: float


def _sync_measured(bench: BenchProject, repositories: list[str]) -> Synced:
    """`_sync_ours` through the running worker, plus the registries' CPU over the same
    command (read before and after it, outside the timed part: the engine's stats call
    takes about a second). Our CPU is the command's and the worker's, which did the sync."""
    worker = bench.worker_process()
    before, worker_before = bench.registries_cpu_seconds(), _cpu(worker)
    result = _sync_ours(bench, repositories)
    if "note: the Geo worker" in result.output:
        raise RuntimeError(f"geo.sync did not go through the worker:\n{result.output[-2000:]}")
    registries = bench.registries_cpu_seconds() - before
    return Synced(result.seconds, result.cpu_seconds + _cpu(worker) - worker_before, registries)


def _cpu(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _floor_row(scenario: str, what: str, run: Synced, baseline: float, target: str) -> Row:
    """The CPU floor under a timed sync, against the same baseline and target.

    Client and both registries share this machine's cores, so no sync can take less wall
    time than the registries' CPU divided by the cores (whatever the client), nor ours
    less than that plus our own process's CPU. When the first is already above the
    target's share of the baseline, the target is out of reach on this machine.
    """
    cores = os.cpu_count() or 1
    registries = run.registries_cpu / cores
    everything = (run.registries_cpu + run.own_cpu) / cores
    return Row(
        scenario,
        f"CPU floor of that {what} on {cores} cores: both registries' CPU ÷ cores "
        "(any client) / with the CPU of `geo.sync` and the worker added",
        f"{registries:.2f} s / {everything:.2f} s",
        f"{baseline:.2f} s",
        f"{_ratio(registries, baseline)} / {_ratio(everything, baseline)}",
        target,
        None,
    )


# 1. Replication latency.


async def _latency_samples(bench: BenchProject, count: int) -> list[float]:
    samples = []
    async with bench.client("primary") as primary, bench.client("secondary") as secondary:
        for i in range(count):
            repo = "bench/latency"
            tag = f"t{i}-{time.time_ns()}"
            digest = await push_streamed(primary, repo, tag, [random_blob(1024)])
            pushed = time.perf_counter()
            while True:
                ref = await secondary.head_manifest(repo, tag)
                if ref is not None and ref.digest == digest:
                    break
                if time.perf_counter() - pushed > 30:
                    raise RuntimeError(f"{repo}:{tag} never reached the secondary")
                await asyncio.sleep(0.002)
            samples.append(time.perf_counter() - pushed)
    return samples


def latency(bench: BenchProject, count: int = 50) -> list[Row]:
    samples = asyncio.run(_latency_samples(bench, count))
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000
    name = f"1. latency, {count} pushes"
    return [
        Row(
            name,
            "p50 manifest PUT → tag on secondary",
            f"{p50:.0f} ms",
            "-",
            "-",
            "≤ 300 ms",
            p50 <= 300,
        ),
        Row(name, "p95", f"{p95:.0f} ms", "-", "-", "≤ 1000 ms", p95 <= 1000),
    ]


# 2. Large layers.


async def _push_large(bench: BenchProject) -> tuple[list[str], list[Blob]]:
    base = random_blob(32 * MiB)
    repos, unique = [], [base]
    async with bench.client("primary") as primary:
        for r in range(6):
            repo = f"bench/large-{r}"
            repos.append(repo)
            for t in range(2):
                layers = [random_blob(4 * MiB), random_blob(4 * MiB)]
                unique += layers
                await push_streamed(primary, repo, f"v{t}", [base, *layers])
    return repos, unique


def _floor_copy(bench: BenchProject, repo_of: dict[str, str], blobs: list[Blob]) -> float:
    """One connection each way, each unique blob streamed GET → PUT once, in sequence."""
    limits = httpx.Limits(max_connections=1)
    repos = sorted(set(repo_of.values()))
    source = httpx.Client(
        base_url=bench.registry_url("primary"),
        limits=limits,
        verify=ssl.create_default_context(cafile=str(bench.paths("primary").certificate)),
        headers=bench.bearer("primary", [Access("repository", r, ("pull",)) for r in repos]),
    )
    target = httpx.Client(
        base_url=bench.registry_url("secondary"),
        limits=limits,
        verify=ssl.create_default_context(cafile=str(bench.paths("secondary").certificate)),
        headers=bench.bearer(
            "secondary", [Access("repository", f"floor/{r}", ("pull", "push")) for r in repos]
        ),
    )
    start = time.perf_counter()
    with source, target:
        for item in blobs:
            repo = repo_of[item.digest]
            upload = target.post(f"/v2/floor/{repo}/blobs/uploads/")
            location = httpx.URL(upload.headers["Location"])  # carries ?_state=…: merge
            with source.stream("GET", f"/v2/{repo}/blobs/{item.digest}") as response:
                put = target.put(
                    location.copy_merge_params({"digest": item.digest}),
                    content=response.iter_bytes(1 << 20),
                    headers={"Content-Length": str(item.size)},
                )
                put.raise_for_status()
    return time.perf_counter() - start


def large_layers(bench: BenchProject) -> list[Row]:
    bench.stop_worker()
    repos, unique = asyncio.run(_push_large(bench))
    unique_mb = sum(b.size for b in unique) / MiB
    repo_of = {b.digest: repos[0] for b in unique}
    for index, repo in enumerate(repos):  # each unique layer lives in the repo that has it
        for b in unique[1 + index * 4 : 1 + (index + 1) * 4]:
            repo_of[b.digest] = repo
    bench.empty_node("secondary")
    bench.start_idle_worker()
    synced = _sync_measured(bench, repos)
    ours = synced.seconds
    bench.start_service("primary")
    bench.empty_node("secondary")
    skopeo = bench.skopeo_sync(repos, "skopeo")
    bench.empty_node("secondary")
    floor = _floor_copy(bench, repo_of, unique)
    name = f"2. large layers, 6 repos × 2 tags, {unique_mb:.0f} MiB unique"
    return [
        Row(
            name,
            "`geo.sync` (through the worker) vs `skopeo sync --all`",
            f"{ours:.2f} s",
            f"{skopeo.seconds:.2f} s",
            _ratio(ours, skopeo.seconds),
            "≤ 0.5×",
            ours <= 0.5 * skopeo.seconds,
        ),
        _floor_row(name, "sync", synced, skopeo.seconds, "≤ 0.5×"),
        Row(
            name,
            "throughput of unique bytes vs the floor",
            f"{unique_mb / ours:.0f} MB/s",
            f"{unique_mb / floor:.0f} MB/s (floor, {floor:.2f} s)",
            _ratio(ours, floor),
            "-",
            None,
        ),
    ]


# 3. Many small tags.


async def _push_small(bench: BenchProject, repos: int, tags: int, prefix: str) -> list[str]:
    names = [f"{prefix}-{r}" for r in range(repos)]
    async with bench.client("primary", max_connections=8) as primary:
        jobs = [
            push_streamed(primary, name, f"v{t}", [random_blob(512)])
            for name in names
            for t in range(tags)
        ]
        await _bounded(jobs)
    return names


def small_tags(bench: BenchProject) -> list[Row]:
    bench.stop_worker()
    repos = asyncio.run(_push_small(bench, 50, 4, "bench/small"))
    bench.empty_node("secondary")
    bench.start_idle_worker()
    full_run = _sync_measured(bench, repos)
    noop_run = _sync_measured(bench, repos)
    bench.start_service("primary")
    full, noop = full_run.seconds, noop_run.seconds
    start = bench.invoke("--list")
    if start.returncode != 0:
        raise RuntimeError(f"invoke --list failed:\n{start.output[-2000:]}")
    skopeo_full = bench.skopeo_sync(repos, "skopeo").seconds
    skopeo_noop = bench.skopeo_sync(repos, "skopeo").seconds
    name = "3. small tags, 50 repos × 4 tags"
    return [
        Row(
            name,
            "full sync through the worker vs skopeo",
            f"{full:.2f} s",
            f"{skopeo_full:.2f} s",
            _ratio(full, skopeo_full),
            "≤ 0.2×",
            full <= 0.2 * skopeo_full,
        ),
        _floor_row(name, "full sync", full_run, skopeo_full, "≤ 0.2×"),
        Row(
            name,
            "no-op resync vs skopeo (process start included)",
            f"{noop:.2f} s",
            f"{skopeo_noop:.2f} s",
            _ratio(noop, skopeo_noop),
            "≤ 0.1×",
            noop <= 0.1 * skopeo_noop,
        ),
        _floor_row(name, "no-op", noop_run, skopeo_noop, "≤ 0.1×"),
        Row(
            name,
            "of which process start: `invoke --list` (Python, invoke, our tasks; no work)",
            f"{start.seconds:.2f} s",
            f"{skopeo_noop:.2f} s",
            _ratio(start.seconds, skopeo_noop),
            "-",
            None,
        ),
    ]


# 4. Memory.


async def _push_big(bench: BenchProject, size: int) -> None:
    layer = file_blob(size, bench.workdir)
    try:
        async with bench.client("primary") as primary:
            await push_streamed(primary, "bench/big", "v1", [layer])
    finally:
        assert layer.path is not None
        layer.path.unlink()


def memory(bench: BenchProject, size: int = 2 << 30) -> list[Row]:
    bench.stop_worker()
    asyncio.run(_push_big(bench, size))
    bench.empty_node("secondary")
    result = _sync_ours(bench, ["bench/big"])
    rss = result.max_rss_kib / 1024
    return [
        Row(
            f"4. memory, one {size >> 20} MiB layer",
            f"peak RSS of `geo.sync` ({result.seconds:.1f} s)",
            f"{rss:.0f} MiB",
            "-",
            "-",
            "≤ 150 MiB",
            rss <= 150,
        )
    ]


# 5. Set-up.


def setup_times(bench: BenchProject) -> list[Row]:
    bench.start_worker()
    assert bench.invoke("geo.stop").returncode == 0
    cold = bench.invoke("geo.setup")
    noop = bench.invoke("geo.setup")
    restart = bench.invoke("geo.restart")
    for result in (cold, noop, restart):
        if result.returncode != 0:
            raise RuntimeError(result.output[-2000:])
    name = "5. set-up"
    return [
        Row(
            name,
            "`geo.setup` from stopped, image present",
            f"{cold.seconds:.2f} s",
            "-",
            "-",
            "≤ 10 s",
            cold.seconds <= 10,
        ),
        Row(
            name, "no-op `geo.setup`", f"{noop.seconds:.2f} s", "-", "-", "≤ 3 s", noop.seconds <= 3
        ),
        Row(
            name,
            "`geo.restart`",
            f"{restart.seconds:.2f} s",
            "-",
            "-",
            "≤ 5 s",
            restart.seconds <= 5,
        ),
    ]


# 6. Scale.


def _backfill_seconds(bench: BenchProject, count: int) -> float:
    """Push `count` repos × 4 tags that no Geo event announces, then time a fresh backfill.

    The primary's service is down while we push and its registry is restarted afterwards,
    which drops the queued notifications: the case backfill exists for. The worker of the
    previous run is stopped first: left running, it backfilled the pushes as they landed and
    verified away the previous run's repositories, slowing the pushes (not the timed part).
    """
    bench.stop_worker()
    bench.empty_node("primary")
    asyncio.run(_push_small(bench, count, 4, f"bench/scale{count}"))
    bench.restart_registry("primary")
    bench.start_service("primary")
    bench.empty_node("secondary")
    start = time.perf_counter()
    bench.start_worker()
    while True:
        status = bench.worker_counts()
        if status and status["counts"].get("synced", 0) >= count:
            return time.perf_counter() - start
        if time.perf_counter() - start > 600:
            raise RuntimeError(f"backfill of {count} repositories did not finish: {status}")
        time.sleep(0.1)


def _page_p95(url: str, loads: int = 50) -> float:
    """p95 of `loads` sequential GETs of `url` over one kept-alive connection, in seconds."""
    samples = []
    with httpx.Client(timeout=30) as client:
        client.get(url).raise_for_status()  # warm: templates compiled, connection open
        for _ in range(loads):
            start = time.perf_counter()
            client.get(url).raise_for_status()
            samples.append(time.perf_counter() - start)
    return statistics.quantiles(samples, n=20)[-1]


def scale(bench: BenchProject) -> list[Row]:
    small = _backfill_seconds(bench, 500)
    large = _backfill_seconds(bench, 5000)
    per_small, per_large = small / 500 * 1000, large / 5000 * 1000
    rss_mib = bench.worker_process().memory_info().rss / MiB
    page = _page_p95(bench.admin_url())
    listing = _page_p95(bench.admin_url("/admin/geo/repositories.json"))
    name = "6. backfill, repos × 4 tags"
    admin = "6. admin page, 5,000 repositories tracked"
    return [
        Row(
            name,
            "500 repositories",
            f"{small:.2f} s ({per_small:.1f} ms/repo)",
            "-",
            "-",
            "-",
            None,
        ),
        Row(
            name,
            "5,000 repositories (linear: per-repo time ≤ 1.2× the 500 run)",
            f"{large:.2f} s ({per_large:.1f} ms/repo)",
            "-",
            _ratio(per_large, per_small),
            "≤ 1.2×",
            per_large <= 1.2 * per_small,
        ),
        Row(
            name,
            "worker RSS after the 5,000 backfill",
            f"{rss_mib:.0f} MiB",
            "-",
            "-",
            "≤ 150 MiB",
            rss_mib <= 150,
        ),
        Row(
            admin,
            "`/admin/geo`: p95 of 50 loads",
            f"{page * 1000:.0f} ms",
            "-",
            "-",
            "≤ 100 ms",
            page <= 0.1,
        ),
        Row(
            admin,
            "its JSON (`/admin/geo/repositories.json`): p95 of 50 loads",
            f"{listing * 1000:.0f} ms",
            "-",
            "-",
            "≤ 100 ms",
            listing <= 0.1,
        ),
    ]


# 7. Cost per request: the figure behind scenario 3 (not a target of the issue).

ACCEPT_MANIFESTS = "application/vnd.oci.image.manifest.v1+json"


async def _timed_heads(
    bench: BenchProject, head: Callable[[str, str], Awaitable[object]], references: list
) -> tuple[float, float]:
    """(client CPU, registry CPU) of HEADing `references` 8 at a time, after a warm-up."""
    await _bounded((head(repo, tag) for repo, tag in references[:40]), 8)
    registry_before, start = bench.registry_cpu_seconds("primary"), time.process_time()
    await _bounded((head(repo, tag) for repo, tag in references), 8)
    client = time.process_time() - start
    return client, bench.registry_cpu_seconds("primary") - registry_before


async def _heads_ours(bench: BenchProject, references: list) -> tuple[float, float]:
    async with bench.client("primary", max_connections=8) as client:
        return await _timed_heads(bench, client.head_manifest, references)


async def _heads_httpx(bench: BenchProject, references: list) -> tuple[float, float]:
    verify = ssl.create_default_context(cafile=str(bench.paths("primary").certificate))
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    url = bench.registry_url("primary")
    repos = sorted({repo for repo, _ in references})
    headers = bench.bearer("primary", [Access("repository", r, ("pull",)) for r in repos])
    async with httpx.AsyncClient(
        base_url=url, verify=verify, limits=limits, headers=headers
    ) as client:

        async def head(repo: str, tag: str) -> None:
            response = await client.head(
                f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT_MANIFESTS}
            )
            response.raise_for_status()

        return await _timed_heads(bench, head, references)


def request_costs(bench: BenchProject) -> list[Row]:
    """Client and registry CPU per manifest HEAD over kept-alive TLS, 8 at a time.

    The client is this process (one thread, so its CPU time is the client's); httpx is
    the client the engine used before (bench/RESULTS.md), with the same pool and limit.
    """
    bench.stop_worker()
    repos = asyncio.run(_push_small(bench, 25, 4, "bench/requests"))
    references = [(repo, f"v{t}") for repo in repos for t in range(4)] * 4
    ours, registry = asyncio.run(_heads_ours(bench, references))
    theirs, _ = asyncio.run(_heads_httpx(bench, references))
    count = len(references)
    name = f"7. cost per request, {count} manifest HEADs"
    return [
        Row(
            name,
            "client CPU per HEAD: RegistryClient (aiohttp) vs httpx.AsyncClient",
            f"{ours / count * 1000:.2f} ms",
            f"{theirs / count * 1000:.2f} ms",
            _ratio(ours, theirs),
            "-",
            None,
        ),
        Row(
            name,
            "registry CPU per HEAD (GOGC=400), during our HEADs",
            f"{registry / count * 1000:.2f} ms",
            "-",
            "-",
            "-",
            None,
        ),
    ]


# 8. Failover drills: a planned round trip (issue 16).


def failover(bench: BenchProject) -> list[Row]:
    """`geo.promote` to the secondary and back, with small data replicated first; the time
    the primary registry refused pushes is its own row."""
    from gdk_geo import promote

    bench.start_worker()
    asyncio.run(_push_small(bench, 5, 2, "failover"))
    started = time.monotonic()
    there = promote.promote(bench.project, "secondary", say=lambda _m: None)
    back = promote.promote(bench.project, "primary", say=lambda _m: None)
    seconds = time.monotonic() - started
    read_only = there.read_only_seconds + back.read_only_seconds
    name = "8. failover"
    return [
        Row(
            name,
            "planned round trip (`geo.promote` there and back), 5 repos × 2 tags",
            f"{seconds:.2f} s",
            "-",
            "-",
            "≤ 30 s",
            seconds <= 30,
        ),
        Row(name, "of which the primary was read-only", f"{read_only:.2f} s", "-", "-", "-", None),
    ]


SCENARIOS = {
    "latency": latency,
    "large": large_layers,
    "small": small_tags,
    "memory": memory,
    "setup": setup_times,
    "scale": scale,
    "requests": request_costs,
    "failover": failover,
}
