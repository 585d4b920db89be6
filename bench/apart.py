"""Scenario 10: one engine against engines apart, side by side in one run.

Two projects, set up for this scenario and destroyed after it: "one engine", both nodes on
this machine's engine as every other scenario runs them, and "engines apart", the primary
on this machine's engine at 198.18.0.1 and the secondary on a site's engine at its own
address (`prepare-site up 21`, docs/sites.md; the images reach it through `geo.setup`, as a
user's do). Each figure is scenario 1's or 3's, measured by their code on both projects,
the projects taking turns, each round in the reverse order of the last, so that a busy
machine weighs on both alike. The rows give both figures and apart ÷ one engine, which has
no target yet: it is reported.

The site is made by CI's script (`testkit.sites`); without it, or without root, the
scenario's row says it was skipped and why. Site 21 is the benchmark's own; it is taken
down afterwards when this scenario brought it up.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

from bench.harness import BenchProject, bench_project
from bench.measures import REPEATS, Row, median_run, ratio
from bench.replication import (
    SMALL_REPOS,
    SMALL_TAGS,
    percentiles,
    push_latencies,
    small_full_syncs,
)
from testkit import sites

SITE = 21  # the benchmark's site: not the tests' (11, 12, 8), not a developer's
NAME = "10. one engine vs engines apart"
TARGET = "reported"  # no target yet for apart ÷ one engine
PUSHES = 50


def _apart(site: sites.Site) -> dict[str, str]:
    """The nodes' settings of the "engines apart" project."""
    return {
        "primary": f"address: {sites.HOME_ADDRESS}",
        "secondary": f'address: {site.address}\ndocker:\n  host: "{site.docker_host}"',
    }


def _row(measure: str, one: float, apart: float, unit: str) -> Row:
    """One figure of both projects: engines apart in the gdk-geo column, one engine as the
    baseline, and their ratio."""

    def shown(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms" if unit == "ms" else f"{seconds:.2f} s"

    return Row(
        NAME,
        f"engines apart ÷ one engine: {measure}",
        f"{shown(apart)} (engines apart)",
        f"{shown(one)} (one engine)",
        ratio(apart, one),
        TARGET,
        None,
        apart,
    )


def _measured(one: BenchProject, apart: BenchProject) -> list[Row]:
    benches = [one, apart]
    print(f"  {NAME}: {PUSHES} pushes to each, in turns …", file=sys.stderr, flush=True)
    (one_p50, one_p95), (apart_p50, apart_p95) = map(percentiles, push_latencies(benches, PUSHES))
    print(f"  {NAME}: full syncs of the small tags, in turns …", file=sys.stderr, flush=True)
    _, full = small_full_syncs(benches, turns=REPEATS)
    one_full, apart_full = (median_run(runs).seconds for runs in full)
    small = f"full sync of {SMALL_REPOS} repos × {SMALL_TAGS} tags through the worker"
    return [
        _row(
            f"p50 manifest PUT → tag on secondary, {PUSHES} pushes each", one_p50, apart_p50, "ms"
        ),
        _row("p95", one_p95, apart_p95, "ms"),
        _row(f"{small}, median of {REPEATS} each", one_full, apart_full, "s"),
    ]


def _skipped(why: str) -> list[Row]:
    return [Row(NAME, f"skipped: {why}", "-", "-", "-", TARGET, None)]


def sites_apart(extra_yml: str, prefix: str) -> list[Row]:
    """The scenario's rows, on two projects of its own with the run's settings
    (`extra_yml`) and container prefix; one row saying why when no site can be made."""
    why = sites.unavailable()
    if why:
        return _skipped(why)
    brought_up = not sites.is_up(SITE)
    try:
        try:
            site = sites.site_up(SITE)
        except sites.SiteError as exc:
            said = str(exc).strip().splitlines()[-1]
            return _skipped(f"prepare-site up {SITE} failed: {said}")
        with contextlib.ExitStack() as stack:
            projects: Sequence[BenchProject] = [
                stack.enter_context(bench_project(extra_yml, f"{prefix}-one")),
                stack.enter_context(bench_project(extra_yml, f"{prefix}-apart", _apart(site))),
            ]
            return _measured(*projects)
    finally:
        if brought_up:
            sites.site_down(SITE)
