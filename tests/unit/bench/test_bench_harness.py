"""The benchmark harness measures what its tables claim.

The floor rows of bench/RESULTS.md divide CPU seconds by cores, so a `run_timed` that
reported the parent's CPU, or none, would make every floor wrong. These run real child
processes; no figure is asserted against a speed target. The scale scenario's
repositories are written into the primary's storage, not pushed: that the registry serves
them, and the worker replicates them, like pushed ones is tests/e2e/test_bench_harness.py.
"""

from __future__ import annotations

import os
import sys

from bench.compare import alternating, in_turns, on_against_off, side_by_side
from bench.harness import run_timed
from bench.measures import Row, Synced, floor_row, median_run

BURN = """
import time
while time.process_time() < {seconds}:
    pass
print(round(time.process_time(), 3))
"""


def test_run_timed_reports_the_childs_cpu_time() -> None:
    timed = run_timed([sys.executable, "-c", BURN.format(seconds=0.3)])

    assert timed.returncode == 0
    child_says = float(timed.output.strip())
    assert child_says >= 0.3
    assert timed.cpu_seconds >= child_says  # it also counts the interpreter's start
    assert timed.cpu_seconds <= timed.seconds * (os.cpu_count() or 1) + 0.05


def test_run_timed_reports_a_sleeping_childs_small_cpu_time() -> None:
    timed = run_timed([sys.executable, "-c", "import time; time.sleep(0.5)"])

    assert timed.seconds >= 0.5
    assert timed.cpu_seconds < 0.5  # waiting is not CPU: the floor must not count it


def test_the_floor_row_divides_cpu_by_cores_against_the_same_baseline() -> None:
    cores = os.cpu_count() or 1
    run = Synced(seconds=5.0, own_cpu=1.0 * cores, registries_cpu=2.0 * cores)

    row = floor_row("3. small", "full sync", run, baseline=10.0, target="≤ 0.2×")

    assert row.ours == "2.00 s / 3.00 s"
    assert row.baseline == "10.00 s"
    assert row.ratio == "0.20× / 0.30×"
    assert row.target == "≤ 0.2×"
    assert row.met is None  # a floor is context for the target, not a verdict of its own


def test_the_median_run_keeps_its_own_cpu_figures() -> None:
    runs = [Synced(3.0, 0.3, 3.3), Synced(1.0, 0.1, 1.1), Synced(2.0, 0.2, 2.2)]

    assert median_run(runs) == Synced(2.0, 0.2, 2.2)


def test_projects_take_turns_each_turn_in_the_reverse_order_of_the_last() -> None:
    assert list(alternating(3, 2)) == [0, 1, 1, 0, 0, 1]
    assert list(alternating(2, 1)) == [0, 0]


def test_repeated_runs_side_by_side_alternate_and_stay_with_their_project() -> None:
    calls: list[int] = []

    def once(k: int) -> str:
        calls.append(k)
        return f"run {len(calls)}"

    runs = side_by_side(once, projects=2, turns=3)

    assert calls == [0, 1, 1, 0, 0, 1]
    assert runs == [["run 1", "run 4", "run 5"], ["run 2", "run 3", "run 6"]]


def test_a_scenario_measured_in_turns_gives_each_projects_rows_in_project_order() -> None:
    # Strings stand in for the projects: the order is what is under test, not a project.
    measured: list[str] = []

    def measure(project) -> list[Row]:
        measured.append(project)
        return [Row(project, "wall", "1 s", "-", "-", "-", None, 1.0)]

    found = in_turns(measure, ["on", "off"], turn=1, started=lambda _k: None)

    assert measured == ["off", "on"]
    assert [rows[0].scenario for rows in found] == ["on", "off"]


def _timed(measure: str, seconds: float | None) -> Row:
    return Row("1. latency", measure, f"{seconds} s", "-", "-", "-", None, seconds)


def test_auth_on_against_off_judges_each_timed_figure_that_both_measured() -> None:
    on = [_timed("p50", 0.109), _timed("p95", 0.2), _timed("throughput", None)]
    off = [_timed("p50", 0.1), _timed("p95", 0.15), _timed("throughput", None)]

    rows = on_against_off(on, off)

    assert [(row.measure, row.ratio, row.target, row.met) for row in rows] == [
        ("auth on ÷ auth off: p50", "1.09×", "≤ 1.1×", True),
        ("auth on ÷ auth off: p95", "1.33×", "≤ 1.1×", False),
    ]
    assert rows[0].baseline == "0.1 s (auth off)"
