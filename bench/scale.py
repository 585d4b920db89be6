"""The scale scenario: backfill of 500 and 5,000 repositories, the worker's memory after,
and the admin page with 5,000 repositories tracked.

The repositories are written straight into the stopped primary registry's storage
(`testkit.storage`) instead of pushed: 20,000 pushes through the Registry API took over
20 minutes, all of it set-up. The registry serves seeded content as it serves pushed
content, and the worker replicates it the same way (tests/e2e/test_bench_harness.py), so
the timed backfill is the same work either way.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import httpx

from bench.harness import BenchProject
from bench.measures import MiB, Row, ratio
from testkit.images import make_image
from testkit.storage import write_image

TAGS = 4
LAYER_BYTES = 512  # the images of the small-tags scenario: one small layer each
# A deadline for "the backfill finishes", never a speed target (that is the per-repo ratio):
# about four times the 0.27 s a repository took on a shared, loaded machine. A fixed
# 600 s stopped a 5,000 run there with 2,190 repositories synced.
SECONDS_PER_REPOSITORY = 1.0


def seed_small(bench: BenchProject, count: int, prefix: str) -> list[str]:
    """An emptied primary holding `count` repositories × `TAGS` one-layer images, each its
    own (a unique layer and config, as a push of `push_small` makes), written while its
    registry is stopped; its Geo service stays stopped. No Geo event announces them."""
    names = [f"{prefix}-{r}" for r in range(count)]

    def fill(storage: Path) -> None:
        for name in names:
            for t in range(TAGS):
                write_image(storage, name, f"v{t}", make_image([os.urandom(LAYER_BYTES)]))

    started = time.perf_counter()
    bench.empty_node("primary", fill)
    seconds = time.perf_counter() - started
    print(f"  seeded {count} × {TAGS} tags in {seconds:.1f} s", file=sys.stderr, flush=True)
    return names


def _backfill_seconds(bench: BenchProject, count: int) -> float:
    """Seed `count` repos × 4 tags that no Geo event announces, then time a fresh backfill.

    The worker of the previous run is stopped first: left running, it would verify away
    the previous run's repositories while the next ones are seeded. The timed part starts
    with the worker's start on an empty secondary and ends when every repository is synced.
    """
    bench.stop_worker()
    seed_small(bench, count, f"bench/scale{count}")
    bench.start_service("primary")
    bench.empty_node("secondary")
    deadline = 120 + count * SECONDS_PER_REPOSITORY
    start = time.perf_counter()
    bench.start_worker()
    while True:
        status = bench.worker_counts()
        if status and status["counts"].get("synced", 0) >= count:
            return time.perf_counter() - start
        if time.perf_counter() - start > deadline:
            raise RuntimeError(f"backfill of {count} repositories did not finish: {status}")
        time.sleep(0.5)  # each poll costs the worker a counts query: keep it off the timing


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
            small,
        ),
        Row(
            name,
            "5,000 repositories (linear: per-repo time ≤ 1.2× the 500 run)",
            f"{large:.2f} s ({per_large:.1f} ms/repo)",
            "-",
            ratio(per_large, per_small),
            "≤ 1.2×",
            per_large <= 1.2 * per_small,
            large,
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
            page,
        ),
        Row(
            admin,
            "its JSON (`/admin/geo/repositories.json`): p95 of 50 loads",
            f"{listing * 1000:.0f} ms",
            "-",
            "-",
            "≤ 100 ms",
            listing <= 0.1,
            listing,
        ),
    ]
