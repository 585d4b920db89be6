"""Token auth on against `registry.auth_enabled: false`, side by side in one run.

Issue 14 asks that no scenario be more than 10% slower with auth on. Each timed figure
(`Row.seconds`) that both projects measured gets a row of its own: on ÷ off, judged
against that bound, so the table says it rather than a reader dividing by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from bench.harness import BenchProject
from bench.measures import Row, ratio

AUTH_OFF = "registry:\n  auth_enabled: false\n"
OFF_LABEL = " (auth off)"
SLOWER_AT_MOST = 1.10


def alternating(turns: int, projects: int) -> Iterator[int]:
    """Project indexes for `turns` turns of every project, each turn in the reverse order
    of the last, so that neither project is always measured first."""
    for turn in range(turns):
        order = range(projects)
        yield from (order if turn % 2 == 0 else reversed(order))


def in_turns(
    measure: Callable[[BenchProject], list[Row]],
    benches: Sequence[BenchProject],
    reverse: bool,
    started: Callable[[int], None],
) -> list[list[Row]]:
    """Each project's rows of a scenario that cannot interleave, measured one project
    after the other; `reverse` lets a run alternate which goes first, since the first
    and the second measured do not see the same machine (bench/RESULTS.md)."""
    order = list(reversed(range(len(benches)))) if reverse else list(range(len(benches)))
    found: dict[int, list[Row]] = {}
    for k in order:
        started(k)
        found[k] = measure(benches[k])
    return [found[k] for k in range(len(benches))]


def on_against_off(on: list[Row], off: list[Row]) -> list[Row]:
    """One row per timed figure both projects measured: auth on ÷ auth off."""
    off_by_key = {(row.scenario, row.measure): row for row in off}
    rows = []
    for row in on:
        other = off_by_key.get((row.scenario, row.measure))
        if row.seconds is None or other is None or other.seconds is None:
            continue
        rows.append(
            Row(
                row.scenario,
                f"auth on ÷ auth off: {row.measure}",
                row.ours,
                f"{other.ours}{OFF_LABEL}",
                ratio(row.seconds, other.seconds),
                f"≤ {SLOWER_AT_MOST:.1f}×",
                row.seconds <= SLOWER_AT_MOST * other.seconds,
                row.seconds,
            )
        )
    return rows
