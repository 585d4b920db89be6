"""The busy-catalog scenario: push→pullable while backfill re-checks a large catalog.

A secondary in sync with 1,000 repositories and `backfill_interval: 5s` re-checks every one
of them every few seconds. Those re-checks share the worker with the events a push sends,
so this measures what a push→pullable costs then, beside the small-catalog latency of
scenario 1, and watches the counts the status reports meanwhile: a repository whose content
matches stays `synced` while it is re-checked, so no sample may show one pending that is not
(the re-checks due are counted apart).
"""

from __future__ import annotations

import asyncio
import sys
import time

from bench.harness import BenchProject
from bench.measures import Row
from bench.replication import latency_rows, latency_samples
from bench.scale import SECONDS_PER_REPOSITORY, seed_small
from testkit.watch import Watch

REPOSITORIES = 1000
BACKFILL = "5s"
INTERVAL_KEY = "geo.secondary.registry_replication.backfill_interval"


def _synced_catalog(bench: BenchProject, count: int) -> None:
    """`count` repositories on the primary, all synced to the secondary by backfill."""
    bench.stop_worker()
    seed_small(bench, count, "bench/busy")
    bench.start_service("primary")
    bench.empty_node("secondary")
    bench.start_worker()
    deadline = time.perf_counter() + 120 + count * SECONDS_PER_REPOSITORY
    while (bench.worker_counts() or {}).get("counts", {}).get("synced", 0) < count:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"backfill of {count} repositories did not finish")
        time.sleep(0.5)  # a poll interval: each poll costs the worker a counts query


def _set_backfill(bench: BenchProject, interval: str) -> None:
    for args in (("geo.config.set", INTERVAL_KEY, interval), ("geo.restart",)):
        done = bench.invoke(*args)
        if done.returncode != 0:
            raise RuntimeError(f"`invoke {' '.join(args)}` failed: {done.stderr}")


class _CountsWatch(Watch):
    """Samples the worker's counts while the pushes run: the fewest synced and the most
    re-checks due seen."""

    interval = 0.5

    def __init__(self, bench: BenchProject) -> None:
        super().__init__()
        self._bench = bench
        self.fewest_synced: int | None = None
        self.most_rechecks = 0

    def poll(self) -> None:
        status = self._bench.worker_status()
        if not status:
            return
        synced = status.get("counts", {}).get("synced", 0)
        if self.fewest_synced is None or synced < self.fewest_synced:
            self.fewest_synced = synced
        self.most_rechecks = max(self.most_rechecks, int(status.get("rechecks_due", 0)))


def busy_catalog(bench: BenchProject, pushes: int = 50) -> list[Row]:
    """p50 and p95 push→pullable with `REPOSITORIES` synced repositories re-checked every
    `BACKFILL`, and the fewest of them the status showed synced meanwhile."""
    _synced_catalog(bench, REPOSITORIES)
    _set_backfill(bench, BACKFILL)
    try:
        asyncio.run(latency_samples([bench], 5))  # warm: not counted
        with _CountsWatch(bench) as watch:
            samples = asyncio.run(latency_samples([bench], pushes))[0]
    finally:
        _set_backfill(bench, "60s")
    print(f"  re-checks due, at most: {watch.most_rechecks}", file=sys.stderr, flush=True)
    name = f"9. busy catalog: {REPOSITORIES} repos re-checked every {BACKFILL}, {pushes} pushes"
    fewest = watch.fewest_synced if watch.fewest_synced is not None else 0
    return [
        *latency_rows(name, samples),
        Row(name, f"fewest synced in the status meanwhile (of {REPOSITORIES}; re-checks due "
            f"at most {watch.most_rechecks})", str(fewest), "-", "-", f"= {REPOSITORIES}",
            fewest >= REPOSITORIES),
    ]  # fmt: skip
