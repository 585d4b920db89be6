"""What every scenario family shares: the results row, a timed `geo.sync` with the CPU
behind it, the CPU floor row derived from that, and pushes kept a few at a time."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.harness import BenchProject, Timed
from testkit.images import push_streamed, random_blob

MiB = 1 << 20


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    scenario: str
    measure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None
    seconds: float | None = None  # the timed figure, compared auth on ÷ off (bench.compare)

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "-"}[self.met]


def ratio(ours: float, baseline: float) -> str:
    """`ours` as a multiple of `baseline`, or "-" when there is no baseline to divide by."""
    return f"{ours / baseline:.2f}×" if baseline else "-"


async def bounded(jobs: Iterable[Awaitable], limit: int = 8) -> None:
    """Await `jobs` at most `limit` at a time, so a set-up of hundreds of pushes or a run
    of requests keeps a fixed number in flight against one registry."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(job) for job in jobs))


async def push_small(bench: BenchProject, repos: int, tags: int, prefix: str) -> list[str]:
    """`repos` repositories × `tags` one-layer images of 512 bytes, pushed through the API
    (for the scenarios whose set-up is small enough to push; scale seeds storage instead)."""
    names = [f"{prefix}-{r}" for r in range(repos)]
    async with bench.client("primary", max_connections=8) as primary:
        jobs = [
            push_streamed(primary, name, f"v{t}", [random_blob(512)])
            for name in names
            for t in range(tags)
        ]
        await bounded(jobs)
    return names


def sync_ours(bench: BenchProject, repositories: list[str]) -> Timed:
    """`invoke geo.sync --repo …` as a user runs it, timed; a failed sync stops the run
    (a failure looks fast, and would be compared as if it were a result)."""
    args = ["geo.sync"] + [arg for repo in repositories for arg in ("--repo", repo)]
    result = bench.invoke(*args)
    if result.returncode != 0:
        raise RuntimeError(f"geo.sync failed:\n{result.output[-2000:]}")
    return result


@dataclass(frozen=True)
class Synced:
    """A timed `geo.sync` and the CPU spent on it: its own process's and both registries'."""

    seconds: float
    own_cpu: float
    registries_cpu: float


def sync_measured(bench: BenchProject, repositories: list[str]) -> Synced:
    """`sync_ours` through the running worker, plus the registries' CPU over the same
    command (read before and after it, outside the timed part: the engine's stats call
    takes about a second). Our CPU is the command's and the worker's, which did the sync."""
    before, worker_before = bench.registries_cpu_seconds(), bench.worker_cpu_seconds()
    result = sync_ours(bench, repositories)
    if "note: the Geo worker" in result.output:
        raise RuntimeError(f"geo.sync did not go through the worker:\n{result.output[-2000:]}")
    registries = bench.registries_cpu_seconds() - before
    worker = bench.worker_cpu_seconds() - worker_before
    return Synced(result.seconds, result.cpu_seconds + worker, registries)


REPEATS = 3  # timed runs behind each figure a target is judged on


Run = TypeVar("Run", Synced, Timed)


def median_run(runs: Sequence[Run]) -> Run:
    """The run with the median wall time, its CPU figures with it.

    One run per figure moved ratios by more than 10% from run to run on a shared machine
    (bench/RESULTS.md, 2026-12-01), which no change of ours could be told apart from.
    """
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]


def floor_row(scenario: str, what: str, run: Synced, baseline: float, target: str) -> Row:
    """The CPU floor under a timed sync, against the same baseline and target.

    Client and both registries share this machine's cores, so no sync can take less wall
    time than the registries' CPU divided by the cores (whatever the client), nor ours
    less than that plus our own process's CPU. When the first is already above the
    target's share of the baseline, the target is out of reach on this machine.
    """
    cores = os.cpu_count() or 1
    registries = run.registries_cpu / cores
    everything = (run.registries_cpu + run.own_cpu) / cores
    return Row(
        scenario,
        f"CPU floor of that {what} on {cores} cores: both registries' CPU ÷ cores "
        "(any client) / with the CPU of `geo.sync` and the worker added",
        f"{registries:.2f} s / {everything:.2f} s",
        f"{baseline:.2f} s",
        f"{ratio(registries, baseline)} / {ratio(everything, baseline)}",
        target,
        None,
    )
