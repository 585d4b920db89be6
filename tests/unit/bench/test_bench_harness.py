"""The benchmark harness measures what its tables claim.

The floor rows of bench/RESULTS.md divide CPU seconds by cores, so a `run_timed` that
reported the parent's CPU, or none, would make every floor wrong. These run real child
processes; no figure is asserted against a speed target. What the harness does to a
node's files runs as the same code here and on a site; here it is run on a scratch node
root. The scale scenario's
repositories are written into the primary's storage, not pushed: that the registry serves
them, and the worker replicates them, like pushed ones is tests/e2e/test_bench_harness.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench import apart, wan
from bench.compare import alternating, in_turns, on_against_off, side_by_side
from bench.harness import _EMPTY, _MARK_SYNCED, BenchProject, run_timed
from bench.measures import Row, Synced, floor_row, median_run
from bench.replication import percentiles
from gdk_geo.project import TRACKING_DB
from gdk_geo.secondary.tracking import TrackingDB
from testkit.sites import HOME_ADDRESS, Site

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


def test_percentiles_are_the_median_and_the_95th_of_the_samples() -> None:
    samples = [float(n) for n in range(100, 0, -1)]  # 1 … 100, out of order

    assert percentiles(samples) == (50.5, 95.0)
    assert percentiles([0.2]) == (0.2, 0.2)


SITE = Site(21, "unix:///run/gdkgeo-site21/docker.sock", "198.18.21.2")


def test_a_project_of_engines_apart_puts_its_secondary_on_the_sites_engine(tmp_path) -> None:
    bench = BenchProject(tmp_path, prefix="gdkgeo-bench-t-apart", node_yml=apart._apart(SITE))

    secondary, primary = bench.cfg.node("secondary"), bench.cfg.node("primary")
    assert secondary.engine.host == SITE.docker_host and bench.placement.is_remote("secondary")
    assert secondary.registry_url.startswith(f"https://{SITE.address}:")
    assert primary.registry_url.startswith(f"https://{HOME_ADDRESS}:")
    assert not bench.placement.is_remote("primary")
    assert bench.cfg.replication("secondary").max_concurrent_repositories == 8


def _local_node(tmp_path: Path) -> tuple[BenchProject, Path, Path]:
    bench = BenchProject(tmp_path, prefix="gdkgeo-bench-t-one")
    paths = bench.paths("secondary")
    return bench, paths.root, paths.registry_storage


def test_emptying_a_node_removes_its_storage_and_databases_and_nothing_else(tmp_path) -> None:
    bench, root, storage = _local_node(tmp_path)
    (storage / "docker" / "registry").mkdir(parents=True)
    (storage / "docker" / "registry" / "blob").write_text("x")
    (root / "geo").mkdir(parents=True)
    (root / "geo" / "tracking.sqlite3").write_text("x")
    (root / "config").mkdir()
    (root / "config" / "gitlab.yml").write_text("kept")

    bench._python_at("secondary", _EMPTY)

    assert list(storage.iterdir()) == [] and list((root / "geo").iterdir()) == []
    assert (root / "config" / "gitlab.yml").read_text() == "kept"


def test_repositories_are_recorded_synced_in_the_nodes_tracking_database(tmp_path) -> None:
    bench, root, _ = _local_node(tmp_path)
    (root / "geo").mkdir(parents=True)

    bench._python_at("secondary", _MARK_SYNCED, TRACKING_DB, "bench/a", "bench/b")

    db = TrackingDB(root / TRACKING_DB)
    try:
        assert db.counts()["synced"] == 2
        assert [row.repository for row in db.rows()] == ["bench/a", "bench/b"]
    finally:
        db.close()


def test_the_sites_scenario_reports_both_figures_and_apart_over_one_engine() -> None:
    row = apart._row("p95", one=0.1, apart=0.25, unit="ms")

    assert (row.ours, row.baseline, row.ratio) == (
        "250 ms (engines apart)",
        "100 ms (one engine)",
        "2.50×",
    )
    assert (row.target, row.met, row.seconds) == ("reported", None, 0.25)


def test_the_sites_scenario_says_why_it_was_skipped_when_no_site_can_be_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(apart.sites, "unavailable", lambda: "prepare-site is not here")

    rows = apart.sites_apart("", "gdkgeo-bench-t")

    assert [(row.measure, row.target, row.met) for row in rows] == [
        ("skipped: prepare-site is not here", "reported", None)
    ]


def test_the_wan_scenario_gives_both_figures_and_judges_the_wans() -> None:
    row = wan.both_row("p50", wan=0.150, loopback=0.030, shown="ms", target="≤ 160 ms", met=True)

    assert (row.ours, row.baseline, row.ratio) == ("150 ms (WAN)", "30 ms (loopback)", "5.00×")
    assert (row.target, row.met, row.seconds) == ("≤ 160 ms", True, 0.150)


def test_the_wan_scenario_judges_the_worker_against_skopeo_on_the_wan_only() -> None:
    judged = wan.skopeo_row("WAN", worker=5.0, skopeo=100.0, judged=True)
    reported = wan.skopeo_row("loopback", worker=5.0, skopeo=30.0, judged=False)

    assert (judged.ratio, judged.target, judged.met) == ("0.05×", "≤ 0.1×", True)
    assert (reported.ratio, reported.target, reported.met) == ("0.17×", "reported", None)


def test_the_wan_scenarios_throughput_is_unique_bits_over_the_sync_against_the_link() -> None:
    unique = 125 * 1024 * 1024  # 1048.6 Mbit: 10.49 s at the link's 100 Mbit/s
    row = wan.throughput_row(unique, wan=12.0, loopback=2.0)

    assert (row.ours, row.baseline) == ("87 Mbit/s (WAN)", "524 Mbit/s (loopback)")
    assert (row.met, row.seconds) == (True, 12.0)  # 87 ≥ 80% of 100 Mbit/s
    assert wan.throughput_row(unique, wan=13.5, loopback=2.0).met is False  # 78 Mbit/s
