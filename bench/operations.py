"""Operation scenarios: set-up and restart times, the cost of one request, a failover.

These time the project's own operations (`geo.setup`, `geo.restart`, `geo.promote`) and
what one Registry API request costs the client and the registry.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx

from bench.compare import side_by_side
from bench.harness import BenchProject, Timed
from bench.measures import REPEATS, Row, bounded, median_run, push_small, ratio
from gdk_geo.registry.tokens import Access

# 5. Set-up.


def _set_up_once(bench: BenchProject) -> tuple[Timed, Timed, Timed]:
    """`geo.setup` from stopped, `geo.setup` again (a no-op), then `geo.restart`."""
    assert bench.invoke("geo.stop").returncode == 0
    runs = (bench.invoke("geo.setup"), bench.invoke("geo.setup"), bench.invoke("geo.restart"))
    for result in runs:
        if result.returncode != 0:
            raise RuntimeError(result.output[-2000:])
    return runs


def _setup_rows(runs: list[tuple[Timed, Timed, Timed]]) -> list[Row]:
    cold, noop, restart = (median_run([run[step] for run in runs]) for step in range(3))
    name = "5. set-up"
    return [
        Row(
            name,
            f"`geo.setup` from stopped, image present, median of {REPEATS}",
            f"{cold.seconds:.2f} s",
            "-",
            "-",
            "≤ 10 s",
            cold.seconds <= 10,
            cold.seconds,
        ),
        Row(
            name,
            f"no-op `geo.setup`, median of {REPEATS}",
            f"{noop.seconds:.2f} s",
            "-",
            "-",
            "≤ 3 s",
            noop.seconds <= 3,
            noop.seconds,
        ),
        Row(
            name,
            f"`geo.restart`, median of {REPEATS}",
            f"{restart.seconds:.2f} s",
            "-",
            "-",
            "≤ 5 s",
            restart.seconds <= 5,
            restart.seconds,
        ),
    ]


def setup_side_by_side(benches: Sequence[BenchProject]) -> list[list[Row]]:
    """Scenario 5 on each project, the projects' set-ups interleaved."""
    for bench in benches:
        bench.start_worker()
    runs = side_by_side(lambda k: _set_up_once(benches[k]), len(benches), REPEATS)
    return [_setup_rows(project_runs) for project_runs in runs]


# 7. Cost per request: the figure behind scenario 3 (not a target of the issue).

ACCEPT_MANIFESTS = "application/vnd.oci.image.manifest.v1+json"


async def _timed_heads(
    bench: BenchProject, head: Callable[[str, str], Awaitable[object]], references: list
) -> tuple[float, float]:
    """(client CPU, registry CPU) of HEADing `references` 8 at a time, after a warm-up."""
    await bounded((head(repo, tag) for repo, tag in references[:40]), 8)
    registry_before, start = bench.registry_cpu_seconds("primary"), time.process_time()
    await bounded((head(repo, tag) for repo, tag in references), 8)
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
    repos = asyncio.run(push_small(bench, 25, 4, "bench/requests"))
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
            ratio(ours, theirs),
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


def _replicated_small_data(bench: BenchProject, repositories: int, tags: int) -> None:
    """Both nodes hold the same `repositories` × `tags` small images and nothing else.

    The drill starts from a replicated pair: run after the other scenarios, the promotion's
    wait for "caught up, verify clean" otherwise timed the worker catching up on what they
    left (the secondary emptied, hundreds of repositories only the primary had): 318 s.
    """
    bench.stop_worker()
    bench.empty_node("primary")
    bench.start_service("primary")
    bench.empty_node("secondary")
    bench.start_worker()
    asyncio.run(push_small(bench, repositories, tags, "failover"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counts = (bench.worker_counts() or {}).get("counts", {})
        busy = sum(counts.get(state, 0) for state in ("pending", "started", "failed"))
        if counts.get("synced", 0) >= repositories and not busy:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the failover drill's data did not replicate: {bench.worker_counts()}")


def failover(bench: BenchProject) -> list[Row]:
    """`geo.promote` to the secondary and back, with small data replicated first; the time
    the primary registry refused pushes is its own row."""
    from gdk_geo.ops import promote

    _replicated_small_data(bench, 5, 2)
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
            seconds,
        ),
        Row(name, "of which the primary was read-only", f"{read_only:.2f} s", "-", "-", "-", None),
    ]
