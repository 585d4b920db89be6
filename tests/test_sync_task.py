"""`invoke geo.sync` on a set-up project: through the worker, and in-process without it.

The output and exit codes are the same either way; only the note on stderr says which ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import invoke, running_project
from registry_login import skopeo_push_image

from gdk_geo import services
from gdk_geo.project import Project

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    with running_project(tmp_path_factory.mktemp("sync"), "s") as project:
        yield project


def test_geo_sync_through_the_worker_then_without_it(project: Project, tmp_path: Path) -> None:
    skopeo_push_image(project, tmp_path, "group/app")
    through = invoke(project.root, "geo.sync", "--repo", "group/app", "--repo", "no/such")
    assert through.returncode == 1, through.stdout + through.stderr
    assert "note:" not in through.stderr, "the worker ran the pass"
    lines = through.stdout.splitlines()
    assert lines[0].startswith("✗ no/such: neither registry has a repository named no/such")
    assert lines[1].startswith("✓ group/app: ") and "deleted; blobs" in lines[1]
    assert lines[2] == "1 synced, 1 failed"

    verified = invoke(project.root, "geo.verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "note:" not in verified.stderr, "the worker ran the verification"
    assert verified.stdout.splitlines()[-1].endswith("repositories compared, 0 differ")

    cfg = project.load()
    services.stop(project.node(cfg, "secondary"))
    alone = invoke(project.root, "geo.sync", "--repo", "group/app")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert alone.stderr.startswith("note: the Geo worker cannot take this (nothing listens on ")
    assert "syncing in this process" in alone.stderr
    assert alone.stdout.splitlines() == [
        "✓ group/app: 0 pushed, 1 unchanged, 0 deleted; blobs 0 copied, 0 mounted",
        "1 synced, 0 failed",
    ]
