"""The lifecycle tasks act on what runs, not on the last render or on today's gdk.yml alone.

One scratch project (its own prefix and free ports) is set up for the module; each test
leaves it running and healthy for the next.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import invoke, ports_yml, running_project, write_gdk_yml

from gdk_geo.project import Project, record
from gdk_geo.runtime import containers, services
from testkit.net import free_port

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("lifecycle")
    with running_project(root, "l") as project:
        yield project


def _must(project: Project, *args: str) -> str:
    result = invoke(project.root, *args)
    assert result.returncode == 0, f"{args}:\n{result.stdout}{result.stderr}"
    return result.stdout


def _pid(project: Project, node: str) -> int | None:
    return services.state(project.node(project.load(), node)).pid


def test_setup_restarts_a_service_that_runs_older_settings(project: Project) -> None:
    """reconfigure renders the change, setup must still restart the worker that runs the old."""
    before = _pid(project, "secondary")
    key = "geo.secondary.registry_replication.max_concurrent_blobs"
    _must(project, "geo.config.set", key, "3")
    _must(project, "geo.reconfigure")
    output = _must(project, "geo.setup")
    assert _pid(project, "secondary") != before, output
    assert "Geo service" in output and "(restarted)" in output, output


def test_setup_restarts_the_services_when_the_signing_pair_is_renewed(project: Project) -> None:
    """The registries are recreated with the new certificate; a service left running
    would go on signing with the old key, and every token it minted would be refused."""
    cfg = project.load()
    key_path = project.node(cfg, "primary").signing_key
    key_path.unlink()
    (key_path.parent / "localhost.crt").unlink()  # both gone: the pair is made again
    before = {node: _pid(project, node) for node in ("primary", "secondary")}

    output = _must(project, "geo.setup")

    assert "token signing pair: created, copied to 1 secondary" in output, output
    for node, pid in before.items():
        assert _pid(project, node) != pid, f"{node} Geo service still runs the old key"
    check = invoke(project.root, "geo.check")
    assert "each registry accepts a token minted now" in check.stdout
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_port_changed_and_changed_back_is_still_ours(project: Project) -> None:
    key = "geo.secondary.port"
    original = str(project.load().geo.secondary.port)
    _must(project, "geo.config.set", key, str(free_port()))
    _must(project, "geo.reconfigure")
    _must(project, "geo.config.set", key, original)
    _must(project, "geo.reconfigure")  # the running worker holds it: ours, not a conflict
    _must(project, "geo.setup")


def test_all_four_ports_rendered_elsewhere_and_restored_are_still_ours(project: Project) -> None:
    """Like emptying gdk.yml and restoring it: the last render names other ports than the
    ones our running services and containers hold."""
    original = project.gdk_yml.read_text()
    cfg = project.load()
    elsewhere = ports_yml(*(free_port() for _ in range(4)), cfg.docker.container_prefix)
    project.gdk_yml.write_text(elsewhere)
    try:
        _must(project, "geo.reconfigure")
    finally:
        project.gdk_yml.write_text(original)
    _must(project, "geo.reconfigure")
    _must(project, "geo.setup")


def test_another_clone_with_the_same_prefix_leaves_our_containers_alone(
    project: Project, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(project.gdk_yml, clone / "gdk.yml")
    names = [containers.container_name(project.load(), node) for node in ("primary", "secondary")]
    for task in (("geo.stop",), ("geo.destroy", "--yes")):
        result = invoke(clone, *task)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"belongs to the project at {project.root}" in result.stderr
        assert "docker.container_prefix" in result.stderr
    status = invoke(clone, "geo.status", "--json")
    assert f"belongs to another project ({project.root})" in status.stdout, status.stdout
    client = containers.engine()
    assert all(client.containers.get(name).status == "running" for name in names)


def test_stop_and_logs_work_with_a_broken_gdk_yml(project: Project) -> None:
    original = project.gdk_yml.read_text()
    pids = [_pid(project, node) for node in ("primary", "secondary")]
    project.gdk_yml.write_text("geo: [\n")
    try:
        logs = _must(project, "geo.logs", "--tail", "5")
        assert "secondary geo" in logs
        stopped = _must(project, "geo.stop")
        assert "secondary Geo service" in stopped and "registry" in stopped, stopped
        assert not any(pid and services._cmdline(pid) for pid in pids)
    finally:
        project.gdk_yml.write_text(original)
    _must(project, "geo.setup")


def test_stop_finds_the_services_after_data_dir_moved(project: Project) -> None:
    pids = [_pid(project, node) for node in ("primary", "secondary")]
    assert all(pids)
    original = project.gdk_yml.read_text()
    project.gdk_yml.write_text(original + "data_dir: elsewhere\n")
    try:
        stopped = _must(project, "geo.stop")
    finally:
        project.gdk_yml.write_text(original)
    assert "primary Geo service" in stopped and "secondary Geo service" in stopped, stopped
    assert not any(services._cmdline(pid) for pid in pids if pid)
    _must(project, "geo.setup")


def test_a_setup_refused_over_a_shared_prefix_records_nothing(
    project: Project, tmp_path: Path
) -> None:
    """Issue 25.12: the refused set-up recorded the shared prefix, so once this clone had
    followed the fix (a prefix of its own), its `geo.destroy` still went for the other
    project's containers, and was refused."""
    clone = tmp_path / "clone"
    shared = project.load().docker.container_prefix
    write_gdk_yml(clone, ports_yml(*(free_port() for _ in range(4)), shared))
    refused = invoke(clone, "geo.setup")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"belongs to the project at {project.root}" in refused.stderr
    assert not record.path(Project(clone)).exists(), record.path(Project(clone)).read_text()

    fix = re.search(r"`invoke (geo\.config\.set docker\.container_prefix \S+)`", refused.stderr)
    assert fix, refused.stderr
    _must(Project(clone), *fix.group(1).split())
    _must(Project(clone), "geo.setup")
    _must(Project(clone), "geo.destroy", "--yes", "--data")
    client = containers.engine()
    names = [containers.container_name(project.load(), node) for node in ("primary", "secondary")]
    assert all(client.containers.get(name).status == "running" for name in names)
