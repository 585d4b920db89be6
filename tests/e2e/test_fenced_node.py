"""A fenced node (a forced promotion's old primary) as the tasks see it, with no registry
running: `geo.reconcile` without `--yes` changes nothing, and `geo.status` says "fenced".

The project is rendered (`geo.reconfigure`) but never set up; its roles are recorded as a
forced promotion of `secondary` leaves them. What `held` finds is given: it needs the
registries, which the failover drills (tests/test_failover*.py) run for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import invoke, named_nodes_yml, ports_yml, unique_prefix, write_gdk_yml

from gdk_geo.ops import reconcile, unplanned
from gdk_geo.project import Project, roles
from testkit.net import free_ports


@pytest.fixture
def fenced(tmp_path: Path) -> Project:
    """A project whose `primary` was fenced by `geo.promote --node secondary --force`."""
    write_gdk_yml(tmp_path, ports_yml(*free_ports(4), unique_prefix("n")))
    rendered = invoke(tmp_path, "geo.reconfigure")
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    project = Project(tmp_path)
    data_dir = project.data_dir(project.load())
    forced = roles.Roles("secondary", 1, fenced=("primary",), previous="primary")
    roles.write(data_dir, forced)
    return project


def test_reconcile_without_yes_keeps_the_fence_when_nothing_is_held(
    fenced: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "held", lambda *_args: [])
    tags, lifted = reconcile.reconcile(fenced, "primary")
    assert (tags, lifted) == ([], False)
    assert roles.read(fenced.data_dir(fenced.load())).fenced == ("primary",)


def test_reconcile_with_yes_lifts_the_fence(
    fenced: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "held", lambda *_args: [])
    assert reconcile.reconcile(fenced, "primary", yes=True) == ([], True)
    assert roles.read(fenced.data_dir(fenced.load())).fenced == ()


def test_status_shows_a_fenced_node_as_fenced(fenced: Project) -> None:
    as_json = invoke(fenced.root, "geo.status", "--json")
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["primary"] == "secondary"
    assert report["nodes"]["primary"]["role"] == "fenced", report["nodes"]["primary"]
    assert report["nodes"]["secondary"]["role"] == "primary"
    table = invoke(fenced.root, "geo.status")
    assert table.returncode == 0, table.stdout + table.stderr
    assert "primary (fenced)" in table.stdout, table.stdout
    assert "(secondary)" not in table.stdout, table.stdout
    assert "primary is fenced: read-only and not syncing" in table.stdout, table.stdout


def test_a_node_fenced_before_is_not_said_to_replicate_from_the_new_primary(
    tmp_path: Path,
) -> None:
    """A second forced promotion (dc3 → dc2) while dc1 is still fenced by the first: only
    the unfenced secondaries converge to dc2, and dc1 is none of them. (The report is read
    as when dc3's registry is down: no registry runs here.)"""
    write_gdk_yml(tmp_path, named_nodes_yml(("dc1", "dc2", "dc3", "dc4"), unique_prefix("n")))
    rendered = invoke(tmp_path, "geo.reconfigure")
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    project = Project(tmp_path)
    second = roles.Roles("dc2", 2, fenced=("dc1", "dc3"), previous="dc3")
    roles.write(project.data_dir(project.load()), second)
    report = unplanned.loss_report(project, project.load(), "dc3", "dc2", "it is down")
    assert report.others == ("dc4",)
    assert not report.complete
