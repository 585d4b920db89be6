"""The benchmark scenarios by name, as `python -m bench <name>` picks them. Each returns
rows measured side by side in the same run; the families live in their own modules.

Most measure the run's project (`SCENARIOS`); a few compare projects set up differently,
which they set up themselves from the run's settings (`OWN_PROJECTS`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.apart import sites_apart
from bench.busy import busy_catalog
from bench.harness import BenchProject
from bench.measures import Row
from bench.operations import failover, request_costs, setup_side_by_side
from bench.replication import (
    large_layers_side_by_side,
    latency_side_by_side,
    memory,
    small_tags_side_by_side,
)
from bench.scale import scale
from bench.wan import wan_against_loopback

Scenario = Callable[[BenchProject], list[Row]]
SideBySide = Callable[[Sequence[BenchProject]], list[list[Row]]]
OwnProjects = Callable[[str, str], list[Row]]  # (the run's extra gdk.yml, its prefix) -> rows

# Scenarios that can measure several projects at once, their samples interleaved.
SIDE_BY_SIDE: dict[str, SideBySide] = {
    "latency": latency_side_by_side,
    "large": large_layers_side_by_side,
    "small": small_tags_side_by_side,
    "setup": setup_side_by_side,
}


def _on_one(scenario: SideBySide) -> Scenario:
    """A side-by-side scenario run on a single project."""
    return lambda bench: scenario([bench])[0]


SCENARIOS: dict[str, Scenario] = {
    "latency": _on_one(latency_side_by_side),
    "large": _on_one(large_layers_side_by_side),
    "small": _on_one(small_tags_side_by_side),
    "memory": memory,
    "setup": _on_one(setup_side_by_side),
    "scale": scale,
    "requests": request_costs,
    "failover": failover,
    "busy": busy_catalog,
}

# Scenarios that set up (and destroy) projects of their own, from the run's gdk.yml
# additions and container prefix, rather than measure the run's project.
OWN_PROJECTS: dict[str, OwnProjects] = {
    "sites": sites_apart,
    "wan": wan_against_loopback,
}

NAMES = [*SCENARIOS, *OWN_PROJECTS]  # every scenario, in the order `python -m bench` runs them
