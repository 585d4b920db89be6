"""`invoke geo.sync --repo <a name neither registry has>` on a real project (issue 13 #18).

It once printed ✓ and added a phantom "synced" row. Both ways `geo.sync` runs are tried:
by the worker (the task asks it over its API) and in-process (the worker stopped). Either
way it must fail, say which repository, exit non-zero, and leave the tracking database
without a row for it, as the worker's status JSON and `geo.status --json` show.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from faults_kit import Scratch
from helpers import invoke, running_project

from gdk_geo.project import Project
from gdk_geo.runtime import services
from testkit.net import wait_for

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    with running_project(tmp_path_factory.mktemp("unknown"), "u") as project:
        yield project


def _tracked(project: Project) -> tuple[set[str], int]:
    """The repositories the worker tracks (its status JSON) and the total `geo.status
    --json` counts: both read the tracking database, each through its own path."""
    status = invoke(project.root, "geo.status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    counts = json.loads(status.stdout)["nodes"]["secondary"]["replication"]["counts"]
    return set(Scratch(project.root).rows()), sum(counts.values())


def _assert_refused(result, name: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "✓" not in output, output
    assert f"✗ {name}: " in result.stdout, output
    assert "0 synced, 1 failed" in result.stdout, output


def test_through_the_worker(project: Project) -> None:
    name = f"does/not/exist-{uuid.uuid4().hex[:8]}"
    before = _tracked(project)
    result = invoke(project.root, "geo.sync", "--repo", name)
    assert "note:" not in result.stderr, "the worker must have run the pass"
    _assert_refused(result, name)
    assert _tracked(project) == before and name not in before[0]


def test_in_process_with_the_worker_stopped(project: Project) -> None:
    name = f"does/not/exist-{uuid.uuid4().hex[:8]}"
    before = _tracked(project)
    secondary = project.node(project.load(), "secondary")
    assert services.stop(secondary)
    try:
        result = invoke(project.root, "geo.sync", "--repo", name)
    finally:
        restarted = invoke(project.root, "geo.restart", "--node", "secondary")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "syncing in this process" in result.stderr, result.stderr
    _assert_refused(result, name)
    wait_for("the restarted worker's status JSON", Scratch(project.root).replication)
    assert _tracked(project) == before and name not in before[0]
