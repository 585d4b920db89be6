"""The benchmark harness measures what its tables claim: wall time, CPU time and peak RSS.

The floor rows of bench/RESULTS.md divide CPU seconds by cores, so a `run_timed` that
reported the parent's CPU, or none, would make every floor wrong. These run real child
processes; no figure is asserted against a speed target.
"""

from __future__ import annotations

import os
import sys

from bench.harness import run_timed
from bench.scenarios import Synced, _floor_row

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

    row = _floor_row("3. small", "full sync", run, baseline=10.0, target="≤ 0.2×")

    assert row.ours == "2.00 s / 3.00 s"
    assert row.baseline == "10.00 s"
    assert row.ratio == "0.20× / 0.30×"
    assert row.target == "≤ 0.2×"
    assert row.met is None  # a floor is context for the target, not a verdict of its own
