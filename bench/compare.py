"""Token auth on against `registry.auth_enabled: false`, side by side in one run.

Issue 14 asks that no scenario be more than 10% slower with auth on. Each timed figure
(`Row.seconds`) that both projects measured gets a row of its own: on ÷ off, judged
against that bound, so the table says it rather than a reader dividing by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from bench.harness import BenchProject
from bench.measures import Row, ratio

AUTH_OFF = "registry:\n  auth_enabled: false\n"
OFF_LABEL = " (auth off)"
SLOWER_AT_MOST = 1.10


def turn_order(turn: int, projects: int) -> list[int]:
    """Project indexes in the order of `turn`, each turn the reverse of the last: the
    project measured first and the one measured second do not see the same machine
    (bench/RESULTS.md), so neither may always be first."""
    order = list(range(projects))
    return order if turn % 2 == 0 else order[::-1]


def alternating(turns: int, projects: int, first_turn: int = 0) -> Iterator[int]:
    """Project indexes for `turns` turns of every project, from turn `first_turn`."""
    for turn in range(first_turn, first_turn + turns):
        yield from turn_order(turn, projects)


Run = TypeVar("Run")


def side_by_side(
    once: Callable[[int], Run], projects: int, turns: int, first_turn: int = 0
) -> list[list[Run]]:
    """`turns` runs of `once(project index)` for each project, the projects alternating:
    repeated figures interleave, so that both projects see the same stretch of a noisy
    machine (one project's three runs, then the other's, moved on ÷ off by 20%)."""
    runs: list[list[Run]] = [[] for _ in range(projects)]
    for k in alternating(turns, projects, first_turn):
        runs[k].append(once(k))
    return runs


def in_turns(
    measure: Callable[[BenchProject], list[Row]],
    benches: Sequence[BenchProject],
    turn: int,
    started: Callable[[int], None],
) -> list[list[Row]]:
    """Each project's rows of a scenario that cannot interleave, measured one project
    after the other in the order of `turn` (a run's scenarios take turns)."""

    def once(k: int) -> list[Row]:
        started(k)
        return measure(benches[k])

    return [runs[0] for runs in side_by_side(once, len(benches), 1, first_turn=turn)]


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
