"""Scenario 11: a WAN between the nodes against loopback, side by side in one run (issue #27).

Two projects, set up for this scenario and destroyed after it, both nodes on this machine:
"loopback", as every other scenario runs them, and "WAN", whose secondary's link is shaped
by `invoke geo.link --node secondary --latency 50ms --rate 100mbit`, as a user shapes it:
every connection of the secondary's worker to the primary's registry and Geo service then
crosses the project's own relay (`gdk_geo.link`); the worker's writes to its own registry
do not. Each figure is measured by the code of scenarios 1, 2 and 3 on both projects, the
projects taking turns, each round in the reverse order of the last:

1. push → pullable, p50 and p95 of 50 pushes (after 5 uncounted);
2. the full sync of 50 repositories × 4 small tags through the worker (median of 3), against
   `skopeo sync` of the same tags, which copies one image at a time, read through the same
   relay (its route to the primary's registry, verified by the project's CA);
3. scenario 2's large layers synced through the worker (median of 3), as a throughput of
   unique bytes against the link's rate.

Each row gives the WAN figure, the loopback one and WAN ÷ loopback; the targets judge the
WAN figures. Before measuring, the scenario checks that the WAN project's worker reads the
primary through the relay, and after the large layers that their bytes crossed it: a WAN
figure measured around the relay would look fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from bench.compare import side_by_side
from bench.harness import BenchProject, Timed, bench_project
from bench.measures import REPEATS, Row, median_run, ratio
from bench.replication import (
    SMALL_REPOS,
    SMALL_TAGS,
    large_syncs,
    percentiles,
    push_latencies,
    small_full_syncs,
)
from gdk_geo.link import process
from gdk_geo.node.settings import load_secondary
from gdk_geo.ops import link as link_ops
from gdk_geo.project import links

NAME = "11. WAN 50 ms, 100 Mbit/s vs loopback"
LATENCY_MS, RATE = "50ms", "100mbit"  # as `invoke geo.link` takes them
RTT = 0.050  # seconds
RATE_BITS = 100_000_000
P50_MOST = 2 * RTT + 0.060  # 160 ms
P95_MOST = 4 * RTT + 0.150  # 350 ms
SKOPEO_SHARE = 0.1  # the worker's full sync, at most this share of skopeo's over the WAN
RATE_SHARE = 0.8  # the large layers' throughput, at least this share of the link's rate
PUSHES = 50


def _say(text: str) -> None:
    print(f"  {NAME}: {text}", file=sys.stderr, flush=True)


# The WAN project's link.


def shape(bench: BenchProject) -> None:
    """Shape the secondary's link as a user does, and check the worker now reads the
    primary through the relay."""
    done = bench.invoke("geo.link", "--node", "secondary", "--latency", LATENCY_MS, "--rate", RATE)
    if done.returncode != 0:
        raise RuntimeError(f"geo.link failed:\n{done.output[-2000:]}")
    through = relay_registry_url(bench)
    worker = load_secondary(bench.paths("secondary").gitlab_yml).primary_api_url
    if worker.rstrip("/") != through:
        raise RuntimeError(f"the worker reads the primary at {worker}, not through {through}")


def relay_registry_url(bench: BenchProject) -> str:
    """The URL the secondary reaches the primary's registry at: its relay's route."""
    recorded = links.read(bench.project.data_dir(bench.cfg))
    return links.reach(bench.cfg, recorded, "secondary", "primary", "registry")


def round_trip_ms(bench: BenchProject) -> float:
    """The round trip from the secondary to the primary's Geo service, the way its worker
    goes (`geo.link`'s probe: a request's time to first byte)."""
    state = next(s for s in link_ops.states(bench.project, bench.cfg) if s.node == "secondary")
    if state.round_trip_ms is None:
        raise RuntimeError("the primary's Geo service did not answer the secondary's probe")
    return state.round_trip_ms


def relayed_to_secondary(bench: BenchProject) -> int:
    """Bytes the secondary's relay has carried from the primary's registry so far (its
    counters, written every second: read after they are fresh)."""
    files = link_ops.relay_files(bench.project, bench.cfg, "secondary")
    recorded = links.read(bench.project.data_dir(bench.cfg))
    port = recorded.nodes["secondary"].ports["primary:registry"]
    time.sleep(1.5)  # the relay writes its counters every second
    stats = process.read_stats(files.stats) or {}
    for route in stats.get("routes", []):
        if route["listen"][1] == port:
            return int(route["bytes_to_client"])
    raise RuntimeError(f"the secondary's relay has no route on port {port}: {stats}")


# Rows.


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def both_row(
    measure: str,
    wan: float,
    loopback: float,
    shown: str,
    target: str = "reported",
    met: bool | None = None,
) -> Row:
    """One figure of both projects: the WAN's in the gdk-geo column, loopback's as the
    baseline, and WAN ÷ loopback. `shown` formats it ("ms", "s" or "Mbit/s")."""

    def text(value: float) -> str:
        if shown == "Mbit/s":
            return f"{value / 1e6:.0f} Mbit/s"
        return _ms(value) if shown == "ms" else _s(value)

    return Row(
        NAME,
        f"WAN ÷ loopback: {measure}",
        f"{text(wan)} (WAN)",
        f"{text(loopback)} (loopback)",
        ratio(wan, loopback),
        target,
        met,
        wan,
    )


def skopeo_row(where: str, worker: float, skopeo: float, judged: bool) -> Row:
    """The full sync through the worker against skopeo's, on one project."""
    return Row(
        NAME,
        f"{where}: full sync of {SMALL_REPOS} repos × {SMALL_TAGS} tags through the worker "
        f"(median of {REPEATS}) vs `skopeo sync` of the same tags",
        _s(worker),
        f"{_s(skopeo)} (skopeo)",
        ratio(worker, skopeo),
        f"≤ {SKOPEO_SHARE:g}×" if judged else "reported",
        worker <= SKOPEO_SHARE * skopeo if judged else None,
        worker,
    )


def throughput_row(unique_bytes: int, wan: float, loopback: float) -> Row:
    """The large layers' unique bytes over each sync's wall time, judged on the WAN against
    the link's rate."""
    wan_bits, loopback_bits = unique_bytes * 8 / wan, unique_bytes * 8 / loopback
    row = both_row(
        f"large layers ({unique_bytes >> 20} MiB unique) through the worker, throughput of "
        f"unique bytes, median of {REPEATS} (WAN {_s(wan)}, loopback {_s(loopback)})",
        wan_bits,
        loopback_bits,
        "Mbit/s",
        f"WAN ≥ {RATE_SHARE * RATE_BITS / 1e6:.0f} Mbit/s ({RATE_SHARE:.0%} of the link)",
        wan_bits >= RATE_SHARE * RATE_BITS,
    )
    return dataclasses.replace(row, seconds=wan)  # the WAN's wall time, not its rate


# The measurements.


def _latency_rows(benches: Sequence[BenchProject]) -> list[Row]:
    _say(f"{PUSHES} pushes to each, in turns …")
    (lo_p50, lo_p95), (wan_p50, wan_p95) = map(percentiles, push_latencies(benches, PUSHES))
    return [
        both_row(
            f"p50 manifest PUT → tag on secondary, {PUSHES} pushes each",
            wan_p50,
            lo_p50,
            "ms",
            f"WAN ≤ {_ms(P50_MOST)} (2 × RTT + 60 ms)",
            wan_p50 <= P50_MOST,
        ),
        both_row(
            "p95",
            wan_p95,
            lo_p95,
            "ms",
            f"WAN ≤ {_ms(P95_MOST)} (4 × RTT + 150 ms)",
            wan_p95 <= P95_MOST,
        ),
    ]


def _small_rows(benches: Sequence[BenchProject], sources: Sequence[str | None]) -> list[Row]:
    _say(f"full syncs of the small tags, {REPEATS} in turns …")
    repos, full = small_full_syncs(benches, turns=REPEATS)
    lo_full, wan_full = (median_run(runs).seconds for runs in full)
    for bench in benches:
        bench.start_service("primary")
    _say("skopeo sync of the same tags, in turns (the WAN's through the relay) …")

    def skopeo(k: int) -> Timed:
        return benches[k].skopeo_sync(repos[k], "skopeo", sources[k])

    lo_skopeo, wan_skopeo = (runs[0].seconds for runs in side_by_side(skopeo, 2, 1))
    return [
        skopeo_row("WAN", wan_full, wan_skopeo, judged=True),
        skopeo_row("loopback", lo_full, lo_skopeo, judged=False),
        both_row(
            f"full sync of {SMALL_REPOS} repos × {SMALL_TAGS} tags through the worker",
            wan_full,
            lo_full,
            "s",
        ),
        both_row("`skopeo sync` of the same tags", wan_skopeo, lo_skopeo, "s"),
    ]


def _large_rows(benches: Sequence[BenchProject]) -> list[Row]:
    _say(f"large layers, {REPEATS} syncs each in turns …")
    wan = benches[1]
    before = relayed_to_secondary(wan)
    pushed, synced = large_syncs(benches, REPEATS)
    crossed = relayed_to_secondary(wan) - before
    unique = sum(blob.size for blob in pushed[1][1])
    if crossed < REPEATS * unique:
        raise RuntimeError(
            f"only {crossed} bytes crossed the WAN relay for {REPEATS} syncs of "
            f"{unique} unique bytes: the syncs went around the link"
        )
    lo_large, wan_large = (median_run(runs).seconds for runs in synced)
    return [throughput_row(unique, wan_large, lo_large)]


def measured(loopback: BenchProject, wan: BenchProject) -> list[Row]:
    """Every row of the scenario, on two set-up projects (the WAN's link shaped here)."""
    benches = [loopback, wan]
    shape(wan)
    sources = [None, urlsplit(relay_registry_url(wan)).netloc]
    rows = [
        both_row(
            "round trip from the secondary to the primary's Geo service (`geo.link`'s probe)",
            round_trip_ms(wan) / 1000,
            round_trip_ms(loopback) / 1000,
            "ms",
            f"WAN ≈ {_ms(RTT)}",
        )
    ]
    rows += _latency_rows(benches)
    rows += _small_rows(benches, sources)
    rows += _large_rows(benches)
    return rows


def wan_against_loopback(extra_yml: str, prefix: str) -> list[Row]:
    """The scenario's rows, on two projects of its own with the run's settings
    (`extra_yml`) and container prefix."""
    with contextlib.ExitStack() as stack:
        loopback = stack.enter_context(bench_project(extra_yml, f"{prefix}-lo"))
        wan = stack.enter_context(bench_project(extra_yml, f"{prefix}-wan"))
        return measured(loopback, wan)
