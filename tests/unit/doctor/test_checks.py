"""geo.check's machinery without a project: skips, per-secondary runs, declarations, docs.

A failed check skips only what needs it; with several secondaries a per-secondary check
runs for each; every check names a fix; the README's tables are generated from the
declarations; the tracking-db check agrees with the worker. `invoke geo.check` against a
real project, each failure made on purpose, is tests/e2e/test_checks.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from check_helpers import check_named, worker_can_open
from helpers import REPO_ROOT, write_gdk_yml

from gdk_geo.doctor import checks, checks_docs
from gdk_geo.doctor.checks import Check, Outcome, failed, passed, run_checks
from gdk_geo.project import Project
from gdk_geo.secondary.tracking import TrackingDB
from testkit.net import free_ports


def _fake(name: str, outcome: Outcome, needs: tuple[str, ...] = ()) -> Check:
    return Check(name, f"{name} works", "-", f"fix {name}", lambda _ctx: outcome, needs)


def test_a_failed_check_skips_what_needs_it_and_only_that(tmp_path: Path) -> None:
    declared = [
        _fake("a", failed("a is broken")),
        _fake("b", passed(), needs=("a",)),
        _fake("c", passed(), needs=("b",)),
        _fake("d", passed()),
    ]
    results = run_checks(Project(tmp_path), checks=declared)
    assert [r.outcome.status for r in results] == ["failed", "skipped", "skipped", "passed"]
    assert checks.headline(results[1]) == "- b works: skipped: needs “a works”"
    assert checks.explanation(results[0]) == ["    a is broken", "    fix: fix a"]


def test_with_several_secondaries_each_per_secondary_check_runs_for_each(
    tmp_path: Path,
) -> None:
    """One result per secondary, each naming it, its prerequisites of the same node; a
    check of the whole project that needs one needs it on every secondary."""
    ports = free_ports(6)
    nodes = "".join(
        f"    {name}:\n      port: {ports[2 * i]}\n"
        f"      registry:\n        port: {ports[2 * i + 1]}\n"
        for i, name in enumerate(("dc1", "dc2", "dc3"))
    )
    write_gdk_yml(tmp_path, f"geo:\n  nodes:\n{nodes}")

    def worker(ctx) -> Outcome:
        return (
            failed("down", "restart with `invoke geo.restart --node secondary`")
            if (ctx.secondary_name == "dc3")
            else passed("up")
        )

    declared = [
        replace(_fake("worker", passed()), run=worker, each_secondary=True),
        replace(
            _fake("lag", passed(), needs=("worker",)),
            run=lambda ctx: passed(ctx.secondary_name),
            each_secondary=True,
        ),
        _fake("delivery", passed(), needs=("worker",)),
    ]
    results = run_checks(Project(tmp_path), checks=declared)
    assert [checks.headline(r) for r in results] == [
        "✓ worker works (dc2: up)",
        "✗ worker works (dc3)",
        "✓ lag works (dc2: dc2)",
        "- lag works (dc3): skipped: needs “worker works”",
        "- delivery works: skipped: needs “worker works”",
    ]
    assert checks.failure_line(declared[0], "dc3") == "✗ worker works (dc3)"
    assert checks.explanation(results[1]) == [
        "    down",
        "    fix: restart with `invoke geo.restart --node dc3`",
    ]


def test_a_user_error_inside_a_check_is_its_failure(tmp_path: Path) -> None:
    (result,) = run_checks(Project(tmp_path), checks=[check_named("gdk.yml")])
    assert result.outcome.status == "failed"
    assert "gdk.yml does not exist" in result.outcome.detail


def test_every_check_names_a_fix_and_only_earlier_checks_as_needs() -> None:
    seen: set[str] = set()
    for check in checks.CHECKS:
        assert check.fix and check.verifies and check.title
        assert set(check.needs) <= seen, f"{check.name} needs a check that runs later"
        seen.add(check.name)


def test_troubleshooting_page_table_is_current() -> None:
    page = (REPO_ROOT / checks_docs.PAGE).read_text()
    assert checks_docs.page_with_table(page) == page, (
        f"{checks_docs.PAGE}'s troubleshooting table is stale: run `invoke geo.config.example`"
    )
    for check in checks.CHECKS:
        assert f"`{checks.failure_line(check)}`" in page
        assert check.fix in page


def test_readme_task_table_lists_check_and_logs() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "| `invoke geo.check` |" in readme
    assert "| `invoke geo.logs [--node N] [--follow]" in readme


def test_tracking_db_check_agrees_with_the_worker_on_a_0444_file(tmp_path: Path) -> None:
    """Issue 13 #23: under root the check said "read-only" by the mode bits while the
    worker, which root's writes ignore them for, wrote fine."""
    database = tmp_path / "geo" / "tracking.sqlite3"
    TrackingDB(database).close()
    database.chmod(0o444)
    problem = checks.tracking_db_problem(database)
    assert (problem is None) == worker_can_open(database), problem


def test_tracking_db_check_fails_where_the_worker_fails(tmp_path: Path) -> None:
    garbage = tmp_path / "geo" / "tracking.sqlite3"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not an SQLite database, " * 64)
    assert not worker_can_open(garbage)
    problem = checks.tracking_db_problem(garbage)
    assert problem is not None and str(garbage) in problem


def test_tracking_db_check_tries_to_create_what_the_worker_will(tmp_path: Path) -> None:
    assert checks.tracking_db_problem(tmp_path / "new" / "tracking.sqlite3") is None
    assert not (tmp_path / "new").exists()  # the probe leaves nothing behind
    blocked = tmp_path / "file"
    blocked.write_text("a file where the worker wants a directory\n")
    problem = checks.tracking_db_problem(blocked / "geo" / "tracking.sqlite3")
    assert problem is not None and str(blocked) in problem
