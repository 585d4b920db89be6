"""Across the package move: what the previous release started, this one finds and runs on.

The previous release (commit PREVIOUS_RELEASE, the last with the flat `gdk_geo/` modules)
sets up a project and replicates an image; then this release, on the same project, with the
old services and containers still running: `geo.status` finds them, `geo.setup` with
nothing changed restarts nothing, `geo.restart` replaces the old services with this
release's, the image is still on both nodes, and `geo.stop` stops them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import invoke, ports_yml, unique_prefix, write_gdk_yml
from registry_login import creds_argument
from upgrade_kit import old_invoke, old_python, previous_release

from gdk_geo.project import Project
from testkit.images import make_image, write_oci_layout
from testkit.net import free_ports

pytestmark = pytest.mark.docker

PREVIOUS_RELEASE = "bde4233"  # the last release before the CLI side moved into packages


def _running(project: Project) -> dict[str, tuple[int, str]]:
    """Per node, as `geo.status --json` finds them: the service's pid and when the registry
    container started (a recreated container starts anew)."""
    status = invoke(project.root, "geo.status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    nodes = json.loads(status.stdout)["nodes"]
    found = {}
    for name, node in nodes.items():
        assert node["service"]["running"] and node["container"]["state"] == "running", node
        found[name] = (node["service"]["pid"], node["container"]["started_at"])
    return found


@pytest.fixture
def moved(docker_client, tmp_path: Path) -> Iterator[tuple[Project, str]]:
    old = previous_release(PREVIOUS_RELEASE, tmp_path / "previous")
    python = old_python(old)
    root = tmp_path / "project"
    ports = free_ports(4)
    write_gdk_yml(root, ports_yml(*ports, unique_prefix("m")))
    project = Project(root)
    try:
        started = old_invoke(python, old, root, "geo.setup")
        assert started.returncode == 0, started.stdout + started.stderr
        layout = write_oci_layout(tmp_path / "layout", "v1", make_image())
        trust = str(project.trust_dir(project.load()))
        pushed = _skopeo(
            "copy", "--dest-cert-dir", trust, "--dest-creds", creds_argument(project),
            f"oci:{layout}:v1", f"docker://localhost:{ports[1]}/moved/app:v1",
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stderr
        synced = old_invoke(python, old, root, "geo.sync", "--all")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        yield project, str(python.parent.parent)
    finally:
        invoke(root, "geo.destroy", "--yes", "--data")


def _gone(pid: int) -> bool:
    """Whether `pid` has ended (a zombie has: only its exit status is left to read)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _skopeo(*args: str):
    import subprocess

    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)


def test_this_release_finds_restarts_and_stops_what_the_previous_one_started(
    moved: tuple[Project, str],
) -> None:
    project, old_venv = moved
    before = _running(project)  # found by this release
    for pid, _started in before.values():  # and run by the previous one's code
        assert psutil.Process(pid).cmdline()[0].startswith(old_venv)

    unchanged = invoke(project.root, "geo.setup")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert _running(project) == before, "nothing changed, so nothing restarts"

    restarted = invoke(project.root, "geo.restart")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    after = _running(project)
    for name, (pid, _started) in before.items():
        assert _gone(pid), name
        new_pid = after[name][0]
        assert new_pid != pid and not psutil.Process(new_pid).cmdline()[0].startswith(old_venv)
    new_pids = [pid for pid, _started in after.values()]
    verified = invoke(project.root, "geo.verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "0 differ" in verified.stdout

    stopped = invoke(project.root, "geo.stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert all(_gone(pid) for pid in new_pids)
