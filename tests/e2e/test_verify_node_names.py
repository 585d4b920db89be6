"""`geo.verify` names the node behind a registry it cannot read (issue 25, item 5).

With named nodes a side ("the secondary") is not a node's name: the fix under dc3 must say
`--node dc3`, whether dc3's worker ran the pass (and met its own registry down) or the
pass ran in this process because dc3's worker was down too.
"""

from __future__ import annotations

import pytest
from failover_kit import SetUp, pushed_before, three_nodes
from helpers import invoke

from gdk_geo.runtime import containers, services


def _fix_under(stdout_and_stderr: str) -> str:
    """The first `fix:` line printed."""
    return next(line for line in stdout_and_stderr.splitlines() if "fix:" in line)


@pytest.mark.docker
def test_the_fix_for_an_unreadable_secondary_names_that_node(nodes_up: SetUp) -> None:
    project = nodes_up(gdk_yml=three_nodes())
    pushed_before(project)
    cfg = project.load()
    engine = containers.engine()
    engine.containers.get(containers.container_name(cfg, "dc3")).stop(timeout=5)

    by_worker = invoke(project.root, "geo.verify", "--node", "dc3")  # dc3's worker runs it
    assert by_worker.returncode == 2, by_worker.stdout + by_worker.stderr
    assert "note: the Geo worker cannot take this" not in by_worker.stderr
    fix = _fix_under(by_worker.stderr)
    assert "`invoke geo.logs --node dc3`" in fix, fix

    services.stop(project.node(cfg, "dc3"))  # dc3 stopped whole: verified in this process
    every = invoke(project.root, "geo.verify")
    assert every.returncode == 2, every.stdout + every.stderr
    assert "dc2: 1 repositories compared, 0 differ" in every.stdout, every.stdout
    fix = _fix_under(every.stderr)
    assert "`invoke geo.logs --node dc3`" in fix, fix
    assert "--node secondary" not in every.stdout + every.stderr
