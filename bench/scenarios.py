"""The benchmark scenarios by name, as `python -m bench <name>` picks them. Each returns
rows measured side by side in the same run; the families live in their own modules."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.harness import BenchProject
from bench.measures import Row
from bench.operations import failover, request_costs, setup_side_by_side, setup_times
from bench.replication import (
    large_layers,
    large_layers_side_by_side,
    latency,
    latency_side_by_side,
    memory,
    small_tags,
    small_tags_side_by_side,
)
from bench.scale import scale

SCENARIOS: dict[str, Callable[[BenchProject], list[Row]]] = {
    "latency": latency,
    "large": large_layers,
    "small": small_tags,
    "memory": memory,
    "setup": setup_times,
    "scale": scale,
    "requests": request_costs,
    "failover": failover,
}

# Scenarios that can measure several projects at once, their samples interleaved.
SIDE_BY_SIDE: dict[str, Callable[[Sequence[BenchProject]], list[list[Row]]]] = {
    "latency": latency_side_by_side,
    "large": large_layers_side_by_side,
    "small": small_tags_side_by_side,
    "setup": setup_side_by_side,
}
