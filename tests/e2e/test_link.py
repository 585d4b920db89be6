"""`geo.link` on a project whose nodes share this machine (issue #27).

One two-node project for the module, each test leaving it as the next expects: a shaped
link that replication goes through, the link in `geo.status` and `geo.check`, a partition
and the fix `geo.check` prints for it (run as printed), shaping kept across `geo.restart`,
and `--reset` and `geo.destroy` leaving no relay, file or record behind.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator

import psutil
import pytest
from failover_kit import digest_on, push_tag, replication_status
from helpers import invoke, running_project

from gdk_geo.node.settings import load_secondary
from gdk_geo.ops import link as link_ops
from gdk_geo.project import Project, links
from testkit.net import wait_for

pytestmark = pytest.mark.docker

# Appended to ports_yml, whose last block is the secondary's.
FAST = "    registry_replication:\n      backfill_interval: 2s\n"


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("link")
    with running_project(root, "k", FAST) as project:
        yield project


def _must(project: Project, *args: str) -> str:
    done = invoke(project.root, *args)
    assert done.returncode == 0, f"{args}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _relays(project: Project) -> list[psutil.Process]:
    """The relay processes of this project (by the spec path on their command line)."""
    data_dir = str(project.data_dir(project.load()))
    found = []
    for process in psutil.process_iter(["cmdline"]):
        argv = process.info["cmdline"] or []
        if "gdk_geo.link.relay" in argv and any(arg.startswith(data_dir) for arg in argv):
            found.append(process)
    return found


def test_a_shaped_link_carries_replication_through_its_relay(project: Project) -> None:
    said = _must(
        project, "geo.link", "--node", "secondary", "--latency", "100ms", "--rate", "50mbit"
    )
    assert "secondary: 100 ms, 50 Mbit/s" in said

    cfg = project.load()
    settings = load_secondary(project.node(cfg, "secondary").gitlab_yml)
    recorded = links.read(project.data_dir(cfg))
    relay_port = recorded.nodes["secondary"].ports["primary:registry"]
    assert settings.primary_api_url == f"https://127.0.0.1:{relay_port}"
    assert len(_relays(project)) == 1
    digest = push_tag(project, cfg, "through-the-link")
    wait_for(
        "the tag on the secondary",
        lambda: digest_on(project, cfg, "secondary", "through-the-link") == digest,
    )


def test_geo_link_alone_shows_each_link_and_the_measured_round_trip(project: Project) -> None:
    shown = _must(project, "geo.link")

    row = next(line for line in shown.splitlines() if "secondary" in line)
    assert "100 ms, 50 Mbit/s" in row and "pid" in row
    found = re.search(r"([0-9.]+) ms\s*│?\s*$", row.strip())
    assert found, shown
    assert float(found.group(1)) >= 100.0, shown  # a secondary's request to the primary


def test_status_and_check_show_the_link_in_force(project: Project) -> None:
    status = json.loads(_must(project, "geo.status", "--json"))
    assert status["nodes"]["secondary"]["link"]["shaping"] == "100 ms, 50 Mbit/s"
    assert status["nodes"]["primary"]["link"]["shaping"] == "plain"

    checked = _must(project, "geo.check")
    line = next(line for line in checked.splitlines() if "every shaped link" in line)
    assert line.startswith("✓"), checked
    assert re.search(r"secondary: 100 ms, 50 Mbit/s, round trip \d+\.\d ms", checked), checked


def test_a_partition_is_a_check_failure_whose_printed_fix_ends_it(project: Project) -> None:
    _must(project, "geo.link", "--node", "secondary", "--down")

    checked = invoke(project.root, "geo.check")
    assert checked.returncode != 0
    fix = re.search(r"fix:\s+`(invoke geo\.link --node secondary --up)`", checked.stdout)
    assert fix, checked.stdout
    argv = shlex.split(fix.group(1))[1:]
    _must(project, *argv)  # the fix, as printed

    # What was pushed while the node was cut off (the check's own probe) replicates now:
    # the worker's retry of what failed meanwhile is the event the second check waits on.
    cfg = project.load()
    wait_for("the secondary caught up", lambda: _caught_up(cfg), timeout=60)
    again = _must(project, "geo.check")
    assert "✓ every shaped link carries traffic" in again


def test_a_relay_that_does_not_run_is_a_check_failure_whose_printed_fix_starts_it(
    project: Project,
) -> None:
    (relay,) = _relays(project)
    relay.terminate()  # as a reboot would leave it: the record asks for a relay, none runs
    relay.wait(10)

    checked = invoke(project.root, "geo.check")
    assert checked.returncode != 0
    assert "✗ every shaped link carries traffic" in checked.stdout, checked.stdout
    fix = re.search(r"fix:\s+`(invoke geo\.setup)`", checked.stdout)
    assert fix, checked.stdout
    _must(project, *shlex.split(fix.group(1))[1:])  # the fix, as printed

    assert len(_relays(project)) == 1
    assert "✓ every shaped link carries traffic" in invoke(project.root, "geo.check").stdout


def _caught_up(cfg) -> bool:
    status = replication_status(cfg, "secondary")
    counts = status["counts"]
    return counts.get("failed", 0) == 0 and counts.get("started", 0) == 0 and status["lag"] == 0


def test_shaping_survives_a_restart(project: Project) -> None:
    _must(project, "geo.restart")

    assert len(_relays(project)) == 1
    cfg = project.load()
    assert link_ops.shaping_of(links.read(project.data_dir(cfg)), "secondary").latency_ms == 100
    digest = push_tag(project, cfg, "after-restart")
    wait_for(
        "the tag after a restart",
        lambda: digest_on(project, cfg, "secondary", "after-restart") == digest,
    )


def test_reset_leaves_no_relay_file_or_record(project: Project) -> None:
    _must(project, "geo.link", "--node", "secondary", "--reset")

    cfg = project.load()
    assert _relays(project) == []
    assert not (project.data_dir(cfg) / link_ops.RELAYS_DIR / "secondary").exists()
    assert not links.path(project.data_dir(cfg)).exists()
    settings = load_secondary(project.node(cfg, "secondary").gitlab_yml)
    assert settings.primary_api_url == cfg.primary.registry_url
    assert _must(project, "geo.verify")


def test_destroy_stops_every_relay(project: Project) -> None:
    _must(project, "geo.link", "--node", "primary", "--latency", "20ms")
    assert len(_relays(project)) == 1

    _must(project, "geo.destroy", "--yes")

    assert _relays(project) == []
    _must(project, "geo.setup")  # the module's project is destroyed again by the fixture
