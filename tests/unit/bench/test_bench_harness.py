"""The benchmark harness measures what its tables claim, on content a registry serves.

The floor rows of bench/RESULTS.md divide CPU seconds by cores, so a `run_timed` that
reported the parent's CPU, or none, would make every floor wrong. These run real child
processes; no figure is asserted against a speed target. The scale scenario's
repositories are written into the primary's storage, not pushed: the tests at the end
prove that the registry serves them, and the worker replicates them, like pushed ones.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import unique_prefix

from bench.compare import alternating, in_turns, on_against_off, side_by_side
from bench.harness import BenchProject, run_timed
from bench.measures import Row, Synced, floor_row, median_run
from bench.replication import latency_side_by_side
from gdk_geo.registry.tokens import Access
from testkit.images import ACCEPT_ALL, Image, make_image, push_built, sha256
from testkit.storage import repository_dir, write_image

BURN = """
import time
while time.process_time() < {seconds}:
    pass
print(round(time.process_time(), 3))
"""


def test_run_timed_reports_the_childs_cpu_time() -> None:
    timed = run_timed([sys.executable, "-c", BURN.format(seconds=0.3)])

    assert timed.returncode == 0
    child_says = float(timed.output.strip())
    assert child_says >= 0.3
    assert timed.cpu_seconds >= child_says  # it also counts the interpreter's start
    assert timed.cpu_seconds <= timed.seconds * (os.cpu_count() or 1) + 0.05


def test_run_timed_reports_a_sleeping_childs_small_cpu_time() -> None:
    timed = run_timed([sys.executable, "-c", "import time; time.sleep(0.5)"])

    assert timed.seconds >= 0.5
    assert timed.cpu_seconds < 0.5  # waiting is not CPU: the floor must not count it


def test_the_floor_row_divides_cpu_by_cores_against_the_same_baseline() -> None:
    cores = os.cpu_count() or 1
    run = Synced(seconds=5.0, own_cpu=1.0 * cores, registries_cpu=2.0 * cores)

    row = floor_row("3. small", "full sync", run, baseline=10.0, target="≤ 0.2×")

    assert row.ours == "2.00 s / 3.00 s"
    assert row.baseline == "10.00 s"
    assert row.ratio == "0.20× / 0.30×"
    assert row.target == "≤ 0.2×"
    assert row.met is None  # a floor is context for the target, not a verdict of its own


def test_the_median_run_keeps_its_own_cpu_figures() -> None:
    runs = [Synced(3.0, 0.3, 3.3), Synced(1.0, 0.1, 1.1), Synced(2.0, 0.2, 2.2)]

    assert median_run(runs) == Synced(2.0, 0.2, 2.2)


def test_projects_take_turns_each_turn_in_the_reverse_order_of_the_last() -> None:
    assert list(alternating(3, 2)) == [0, 1, 1, 0, 0, 1]
    assert list(alternating(2, 1)) == [0, 0]


def test_repeated_runs_side_by_side_alternate_and_stay_with_their_project() -> None:
    calls: list[int] = []

    def once(k: int) -> str:
        calls.append(k)
        return f"run {len(calls)}"

    runs = side_by_side(once, projects=2, turns=3)

    assert calls == [0, 1, 1, 0, 0, 1]
    assert runs == [["run 1", "run 4", "run 5"], ["run 2", "run 3", "run 6"]]


def test_a_scenario_measured_in_turns_gives_each_projects_rows_in_project_order() -> None:
    # Strings stand in for the projects: the order is what is under test, not a project.
    measured: list[str] = []

    def measure(project) -> list[Row]:
        measured.append(project)
        return [Row(project, "wall", "1 s", "-", "-", "-", None, 1.0)]

    found = in_turns(measure, ["on", "off"], turn=1, started=lambda _k: None)

    assert measured == ["off", "on"]
    assert [rows[0].scenario for rows in found] == ["on", "off"]


def _timed(measure: str, seconds: float | None) -> Row:
    return Row("1. latency", measure, f"{seconds} s", "-", "-", "-", None, seconds)


def test_auth_on_against_off_judges_each_timed_figure_that_both_measured() -> None:
    on = [_timed("p50", 0.109), _timed("p95", 0.2), _timed("throughput", None)]
    off = [_timed("p50", 0.1), _timed("p95", 0.15), _timed("throughput", None)]

    rows = on_against_off(on, off)

    assert [(row.measure, row.ratio, row.target, row.met) for row in rows] == [
        ("auth on ÷ auth off: p50", "1.09×", "≤ 1.1×", True),
        ("auth on ÷ auth off: p95", "1.33×", "≤ 1.1×", False),
    ]
    assert rows[0].baseline == "0.1 s (auth off)"


# Seeding: the scale scenario writes its repositories straight into the stopped primary's
# storage instead of pushing them. These prove, on the bench project's real nodes (token
# auth, TLS, the running worker), that what is seeded is what a push stores, that the
# registry serves it, and that the worker replicates it like a pushed repository.


@pytest.fixture(scope="module")
def bench(docker_client, tmp_path_factory) -> Iterator[BenchProject]:
    project = BenchProject(tmp_path_factory.mktemp("bench"), prefix=unique_prefix("h"))
    project.setup()
    try:
        yield project
    finally:
        project.destroy()


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _push(bench: BenchProject, repo: str, tags: dict[str, Image]) -> None:
    async def push() -> None:
        async with bench.client("primary") as primary:
            for tag, image in tags.items():
                await push_built(primary, repo, tag, image)

    asyncio.run(push())


def _reader(bench: BenchProject, node: str, repos: list[str]) -> httpx.Client:
    """A plain HTTP client (not the client under test) with a pull token for `repos`."""
    access = [Access("repository", repo, ("pull",)) for repo in repos]
    if node == "primary":
        access.append(Access("registry", "catalog", ("*",)))
    return httpx.Client(
        base_url=bench.registry_url(node),
        verify=ssl.create_default_context(cafile=str(bench.paths(node).certificate)),
        headers=bench.bearer(node, access),
    )


def _tag_digests(reader: httpx.Client, repo: str) -> dict[str, str]:
    tags = reader.get(f"/v2/{repo}/tags/list").raise_for_status().json()["tags"]
    return {
        tag: reader.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT_ALL})
        .raise_for_status()
        .headers["Docker-Content-Digest"]
        for tag in tags
    }


@pytest.mark.docker
def test_a_seeded_repository_is_stored_file_for_file_as_a_push_stores_it(bench) -> None:
    image = make_image([os.urandom(512)])
    _push(bench, "seed/pushed", {"v1": image})

    with bench.registry_stopped("primary") as storage:
        write_image(storage, "seed/seeded", "v1", image)
        pushed = _files(repository_dir(storage, "seed/pushed"))
        seeded = _files(repository_dir(storage, "seed/seeded"))
    bench.start_service("primary")

    assert len(pushed) == 5  # config and layer links, the revision, the tag's two links
    assert seeded == pushed


@pytest.mark.docker
def test_the_registry_serves_a_seeded_repository_and_the_worker_replicates_it(bench) -> None:
    seeded_tags = {f"v{t}": make_image([os.urandom(512)]) for t in range(3)}
    pushed_tags = {f"v{t}": make_image([os.urandom(512)]) for t in range(3)}
    _push(bench, "seed/by-push", pushed_tags)
    with bench.registry_stopped("primary") as storage:
        for tag, image in seeded_tags.items():
            write_image(storage, "seed/by-storage", tag, image)
    bench.start_service("primary")

    repos = ["seed/by-storage", "seed/by-push"]
    with _reader(bench, "primary", repos) as primary:
        assert (
            "seed/by-storage"
            in primary.get("/v2/_catalog").raise_for_status().json()["repositories"]
        )
        listed = primary.get("/v2/seed/by-storage/tags/list").raise_for_status().json()
        assert sorted(listed["tags"]) == sorted(seeded_tags)
        for tag, image in seeded_tags.items():
            got = primary.get(
                f"/v2/seed/by-storage/manifests/{tag}", headers={"Accept": ACCEPT_ALL}
            ).raise_for_status()
            assert got.headers["Docker-Content-Digest"] == image.digest
            assert got.headers["Content-Type"] == image.media_type
            assert got.content == image.manifest
            for blob in image.blobs:
                served = primary.get(f"/v2/seed/by-storage/blobs/{sha256(blob)}")
                assert served.raise_for_status().content == blob
        on_primary = {repo: _tag_digests(primary, repo) for repo in repos}

    synced = bench.invoke("geo.sync", *[arg for repo in repos for arg in ("--repo", repo)])
    assert synced.returncode == 0, synced.output

    with _reader(bench, "secondary", repos) as secondary:
        for repo in repos:
            assert _tag_digests(secondary, repo) == on_primary[repo], repo
        for image in seeded_tags.values():
            for blob in image.blobs:
                served = secondary.get(f"/v2/seed/by-storage/blobs/{sha256(blob)}")
                assert served.raise_for_status().content == blob
    rows = httpx.get(bench.admin_url("/admin/geo/repositories.json?search=seed/by-")).json()
    states = {row["repository"]: row["state"] for row in rows["repositories"]}
    assert states == {"seed/by-push": "synced", "seed/by-storage": "synced"}


@pytest.mark.docker
def test_the_latency_scenario_measures_projects_in_turns_through_the_worker(bench) -> None:
    # The same project twice: each sample is a real push replicated by the real worker.
    first, second = latency_side_by_side([bench, bench], count=4, warm_up=1)

    for rows in (first, second):
        assert [row.scenario for row in rows] == ["1. latency, 4 pushes"] * 2
        p50, p95 = (row.seconds for row in rows)
        assert p50 is not None and p95 is not None
        assert 0 < p50 <= p95
