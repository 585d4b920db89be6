"""The benchmark harness on the bench project's real nodes: seeded content is served.

The scale scenario writes its repositories straight into the stopped primary's storage
instead of pushing them. These prove, on the bench project's real nodes (token auth, TLS,
the running worker), that what is seeded is what a push stores, that the registry serves
it, and that the worker replicates it like a pushed repository. The harness's own
arithmetic (CPU time, floors, turns) is tests/unit/bench/test_bench_harness.py.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import unique_prefix

from bench.harness import BenchProject
from bench.replication import latency_side_by_side
from gdk_geo.registry.tokens import Access
from testkit.images import ACCEPT_ALL, Image, make_image, push_built, sha256
from testkit.net import wait_for
from testkit.storage import repository_dir, write_image


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

    # The worker may still be running its own sync of seed/by-push (its push event, or a
    # retry from while the primary was stopped): wait for it to settle, then both are synced.
    def settled_states() -> dict[str, str] | None:
        rows = httpx.get(bench.admin_url("/admin/geo/repositories.json?search=seed/by-")).json()
        found = {row["repository"]: row["state"] for row in rows["repositories"]}
        return None if "started" in found.values() else found

    settled = wait_for("both repositories to settle", settled_states)
    assert settled == {"seed/by-push": "synced", "seed/by-storage": "synced"}


@pytest.mark.docker
def test_the_latency_scenario_measures_projects_in_turns_through_the_worker(bench) -> None:
    # The same project twice: each sample is a real push replicated by the real worker.
    first, second = latency_side_by_side([bench, bench], count=4, warm_up=1)

    for rows in (first, second):
        assert [row.scenario for row in rows] == ["1. latency, 4 pushes"] * 2
        p50, p95 = (row.seconds for row in rows)
        assert p50 is not None and p95 is not None
        assert 0 < p50 <= p95
