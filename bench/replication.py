"""Replication scenarios: latency of one push, large layers, many small tags, memory.

Each times what a user waits for (a tag reaching the secondary, `invoke geo.sync`) against
a baseline measured in the same run: skopeo doing the same copy, or a floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import statistics
import time
from collections.abc import Sequence

import httpx

from bench.compare import alternating, side_by_side
from bench.harness import BenchProject, Timed
from bench.measures import (
    REPEATS,
    MiB,
    Row,
    Synced,
    floor_row,
    median_run,
    push_small,
    ratio,
    sync_measured,
    sync_ours,
)
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.tokens import Access
from testkit.images import Blob, file_blob, push_streamed, random_blob

# 1. Replication latency.


async def _one_latency(primary: RegistryClient, secondary: RegistryClient, tag: str) -> float:
    """Seconds from one manifest PUT to the primary until the secondary serves that tag."""
    repo = "bench/latency"
    digest = await push_streamed(primary, repo, tag, [random_blob(1024)])
    pushed = time.perf_counter()
    while True:
        ref = await secondary.head_manifest(repo, tag)
        if ref is not None and ref.digest == digest:
            return time.perf_counter() - pushed
        if time.perf_counter() - pushed > 30:
            raise RuntimeError(f"{repo}:{tag} never reached the secondary")
        await asyncio.sleep(0.002)


async def latency_samples(benches: Sequence[BenchProject], count: int) -> list[list[float]]:
    """`count` pushes to each project, the projects taking turns, each turn in the reverse
    order of the last: measured one project after the other, whichever went first had a
    different p95 (bench/RESULTS.md), so each sample now has its pair at the same moment."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            (
                await stack.enter_async_context(bench.client("primary")),
                await stack.enter_async_context(bench.client("secondary")),
            )
            for bench in benches
        ]
        samples: list[list[float]] = [[] for _ in benches]
        for k in alternating(count, len(benches)):
            samples[k].append(await _one_latency(*clients[k], f"t-{time.time_ns()}"))
    return samples


def percentiles(samples: list[float]) -> tuple[float, float]:
    """The p50 and p95 of latency samples."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


LATENCY_TARGETS = (0.3, 1.0)  # seconds: p50, p95 with both nodes on this machine


def latency_rows(
    name: str, samples: list[float], targets: tuple[float, float] = LATENCY_TARGETS
) -> list[Row]:
    """The p50 and p95 rows of scenario `name`, judged against `targets` (p50, p95)."""
    p50, p95 = percentiles(samples)
    p50_most, p95_most = targets
    return [
        Row(
            name,
            "p50 manifest PUT → tag on secondary",
            f"{p50 * 1000:.0f} ms",
            "-",
            "-",
            f"≤ {p50_most * 1000:.0f} ms",
            p50 <= p50_most,
            p50,
        ),
        Row(
            name,
            "p95",
            f"{p95 * 1000:.0f} ms",
            "-",
            "-",
            f"≤ {p95_most * 1000:.0f} ms",
            p95 <= p95_most,
            p95,
        ),
    ]


def push_latencies(
    benches: Sequence[BenchProject], count: int = 50, warm_up: int = 5
) -> list[list[float]]:
    """Each project's `count` latency samples, the projects in turns, after `warm_up`
    pushes to each that are not counted: the first ones also pay what happens once (the
    repository created on the secondary, its tokens minted, the worker's connections
    opened), which the set-up figures measure."""
    asyncio.run(latency_samples(benches, warm_up))
    return asyncio.run(latency_samples(benches, count))


def latency_side_by_side(
    benches: Sequence[BenchProject], count: int = 50, warm_up: int = 5
) -> list[list[Row]]:
    """p50 and p95 of `count` pushes to each project (`push_latencies`)."""
    return [
        latency_rows(f"1. latency, {count} pushes", samples)
        for samples in push_latencies(benches, count, warm_up)
    ]


# 2. Large layers.


async def push_large(bench: BenchProject) -> tuple[list[str], list[Blob]]:
    """Scenario 2's images pushed to the primary: 6 repositories × 2 tags, each of a 32 MiB
    base layer they share and two 4 MiB layers of its own; the repositories and the unique
    blobs (the base first)."""
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


def _sync_into_empty(bench: BenchProject, repos: list[str]) -> Synced:
    """One timed `geo.sync` of `repos` into an emptied secondary, by a fresh idle worker."""
    bench.empty_node("secondary")
    bench.start_idle_worker()
    return sync_measured(bench, repos)


def _skopeo_into_empty(bench: BenchProject, repos: list[str]) -> Timed:
    """One timed `skopeo sync` of `repos` into an emptied secondary."""
    bench.empty_node("secondary")
    return bench.skopeo_sync(repos, "skopeo")


def _layer_homes(repos: list[str], unique: list[Blob]) -> dict[str, str]:
    """The repository each unique layer lives in: the base in the first, then four each."""
    repo_of = {b.digest: repos[0] for b in unique}
    for index, repo in enumerate(repos):
        for b in unique[1 + index * 4 : 1 + (index + 1) * 4]:
            repo_of[b.digest] = repo
    return repo_of


def _large_rows(unique: list[Blob], synced: Synced, skopeo: Timed, floor: float) -> list[Row]:
    unique_mb = sum(b.size for b in unique) / MiB
    ours = synced.seconds
    name = f"2. large layers, 6 repos × 2 tags, {unique_mb:.0f} MiB unique"
    return [
        Row(
            name,
            f"`geo.sync` (through the worker) vs `skopeo sync --all`, median of {REPEATS} each",
            f"{ours:.2f} s",
            f"{skopeo.seconds:.2f} s",
            ratio(ours, skopeo.seconds),
            "≤ 0.5×",
            ours <= 0.5 * skopeo.seconds,
            ours,
        ),
        floor_row(name, "sync", synced, skopeo.seconds, "≤ 0.5×"),
        Row(
            name,
            "throughput of unique bytes vs the floor",
            f"{unique_mb / ours:.0f} MB/s",
            f"{unique_mb / floor:.0f} MB/s (floor, {floor:.2f} s)",
            ratio(ours, floor),
            "-",
            None,
        ),
    ]


def large_syncs(
    benches: Sequence[BenchProject], turns: int = REPEATS
) -> tuple[list[tuple[list[str], list[Blob]]], list[list[Synced]]]:
    """Scenario 2's images pushed to each project's primary (its worker stopped meanwhile),
    then `turns` timed syncs into each project's emptied secondary by a fresh idle worker,
    the projects in turns; each project's (repositories, unique blobs) and runs. Each
    primary's Geo service is left stopped (`BenchProject.start_idle_worker`)."""
    pushed = []
    for bench in benches:
        bench.stop_worker()
        pushed.append(asyncio.run(push_large(bench)))
    repos = [project_repos for project_repos, _ in pushed]
    synced = side_by_side(lambda k: _sync_into_empty(benches[k], repos[k]), len(benches), turns)
    return pushed, synced


def large_layers_side_by_side(benches: Sequence[BenchProject]) -> list[list[Row]]:
    """Scenario 2 on each project, the projects' timed syncs (and skopeo's) interleaved."""
    pushed, synced = large_syncs(benches)
    repos = [project_repos for project_repos, _ in pushed]
    count = len(benches)
    for bench in benches:
        bench.start_service("primary")
    skopeo = side_by_side(lambda k: _skopeo_into_empty(benches[k], repos[k]), count, REPEATS)
    rows = []
    for k, (bench, (project_repos, unique)) in enumerate(zip(benches, pushed, strict=True)):
        bench.empty_node("secondary")
        floor = _floor_copy(bench, _layer_homes(project_repos, unique), unique)
        rows.append(_large_rows(unique, median_run(synced[k]), median_run(skopeo[k]), floor))
    return rows


# 3. Many small tags.

SMALL_REPOS, SMALL_TAGS = 50, 4


def _full_then_idle(bench: BenchProject, repos: list[str]) -> Synced:
    """A timed full sync into an emptied secondary; its worker stays idle for the no-ops."""
    bench.empty_node("secondary")
    bench.start_idle_worker()
    return sync_measured(bench, repos)  # once: each takes an emptied node, skopeo 30 s


def _small_rows(
    full_run: Synced, noop_run: Synced, start: Timed, skopeo_full: float, skopeo_noop: float
) -> list[Row]:
    full, noop = full_run.seconds, noop_run.seconds
    name = f"3. small tags, {SMALL_REPOS} repos × {SMALL_TAGS} tags"
    return [
        Row(
            name,
            "full sync through the worker vs skopeo",
            f"{full:.2f} s",
            f"{skopeo_full:.2f} s",
            ratio(full, skopeo_full),
            "≤ 0.2×",
            full <= 0.2 * skopeo_full,
            full,
        ),
        floor_row(name, "full sync", full_run, skopeo_full, "≤ 0.2×"),
        Row(
            name,
            f"no-op resync vs skopeo (process start included), median of {REPEATS} each",
            f"{noop:.2f} s",
            f"{skopeo_noop:.2f} s",
            ratio(noop, skopeo_noop),
            "≤ 0.1×",
            noop <= 0.1 * skopeo_noop,
            noop,
        ),
        floor_row(name, "no-op", noop_run, skopeo_noop, "≤ 0.1×"),
        Row(
            name,
            "of which process start: `invoke --list` (Python, invoke, our tasks; no work)",
            f"{start.seconds:.2f} s",
            f"{skopeo_noop:.2f} s",
            ratio(start.seconds, skopeo_noop),
            "-",
            None,
        ),
    ]


def _process_start(bench: BenchProject) -> Timed:
    start = bench.invoke("--list")
    if start.returncode != 0:
        raise RuntimeError(f"invoke --list failed:\n{start.output[-2000:]}")
    return start


def small_full_syncs(
    benches: Sequence[BenchProject], turns: int = 1
) -> tuple[list[list[str]], list[list[Synced]]]:
    """The small tags pushed to each project's primary (its worker stopped meanwhile), then
    `turns` timed full syncs into each project's emptied secondary, the projects in turns;
    each project's repositories and runs. Each worker is left idle, its primary's Geo
    service stopped (`BenchProject.start_idle_worker`)."""
    repos = []
    for bench in benches:
        bench.stop_worker()
        repos.append(asyncio.run(push_small(bench, SMALL_REPOS, SMALL_TAGS, "bench/small")))
    full = side_by_side(lambda k: _full_then_idle(benches[k], repos[k]), len(benches), turns)
    return repos, full


def small_tags_side_by_side(benches: Sequence[BenchProject]) -> list[list[Row]]:
    """Scenario 3 on each project, the projects' timed syncs (and skopeo's) interleaved."""
    repos, full = small_full_syncs(benches)
    count = len(benches)
    noop = side_by_side(lambda k: sync_measured(benches[k], repos[k]), count, REPEATS)
    for bench in benches:
        bench.start_service("primary")
    start = [_process_start(bench) for bench in benches]

    def skopeo(k: int) -> Timed:
        return benches[k].skopeo_sync(repos[k], "skopeo")

    skopeo_full = side_by_side(skopeo, count, 1)  # into an empty prefix: a full copy
    skopeo_noop = side_by_side(skopeo, count, REPEATS)
    return [
        _small_rows(
            full[k][0],
            median_run(noop[k]),
            start[k],
            skopeo_full[k][0].seconds,
            median_run(skopeo_noop[k]).seconds,
        )
        for k in range(count)
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
    result = sync_ours(bench, ["bench/big"])
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
