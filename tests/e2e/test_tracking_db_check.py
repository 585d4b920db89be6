"""The tracking-db check in a running project: geo.check's ✗, its printed fix run verbatim,
then ✓, with the worker meeting the same break (an immutable file, a damaged one).

Each way the database can be unwritable, diagnosed and fixed without a project, is in
tests/unit/doctor/test_tracking_db_check.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from check_helpers import assert_fails, check_named, fixed, printed_fix_text, run_check, run_fix
from check_helpers import worker_can_open as _worker_can_open_here
from helpers import invoke, running_project
from immutable import run_ok

from gdk_geo.project import Project
from gdk_geo.runtime import services


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("tracking")
    with running_project(root, "t") as project:
        yield project


def _database(project: Project) -> Path:
    return project.node(project.load(), "secondary").tracking_db


@pytest.mark.docker
def test_geo_check_on_an_immutable_database(project: Project, chattr: list[Path]) -> None:
    database = _database(project)
    chattr.append(database)
    run_ok(["chattr", "+i", str(database)])
    result = run_check(project)
    assert not _worker_can_open_here(database)  # a worker starting now fails
    assert_fails(result, {"tracking-db"}, own_fix={"tracking-db"})
    fix = printed_fix_text(result.stdout, check_named("tracking-db"))
    assert fix.startswith(f"as root: `chattr -ia {database}`"), result.stdout
    run_fix(project, result.stdout, "tracking-db", shell=True)
    fixed(project)


@pytest.mark.docker
def test_geo_check_on_a_damaged_database(project: Project) -> None:
    database = _database(project)
    assert services.stop(project.node(project.load(), "secondary"))
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    database.write_bytes(b"not SQLite: a half-copied backup, say. " * 200)
    refused = invoke(project.root, "geo.restart", "--node", "secondary")
    assert refused.returncode != 0, refused.stdout + refused.stderr  # the worker meets it
    assert "tracking database" in refused.stdout + refused.stderr
    result = run_check(project)
    assert_fails(result, {"worker", "tracking-db"}, {"lag", "realm"}, own_fix={"tracking-db"})
    assert f"{database} is not a usable SQLite database" in result.stdout
    run_fix(project, result.stdout, "tracking-db", shell=True)
    fixed(project)
