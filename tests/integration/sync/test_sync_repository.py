"""sync_repository between two real registries: shapes, mounts, deletions, failures."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from registry_kit import RegistryProxy, access_log

from gdk_geo.registry.backoff import Backoff
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.reference import DOCKER_MANIFEST_LIST
from gdk_geo.registry.transport import RetryPolicy
from gdk_geo.secondary.blob_locations import BlobLocations
from gdk_geo.secondary.sync import SyncOptions, sync_repository
from gdk_geo.secondary.tag_removal import delete_repository
from gdk_geo.secondary.verify import compare_repository
from testkit.images import (
    Image,
    Pusher,
    make_image,
    make_index,
    sha256,
    skopeo_push,
    write_oci_layout,
)

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

QUICK_HINTS = SyncOptions(hint_retry_delays=(0.05, 0.1))  # a hint that never shows, given up fast


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@dataclass
class Sides:
    """Clients under test for both registries, plus independent pushers for set-up."""

    source: RegistryClient
    target: RegistryClient
    primary: Pusher
    secondary: Pusher


@asynccontextmanager
async def sides(source_url: str, target_url: str) -> AsyncIterator[Sides]:
    both = Sides(
        RegistryClient(source_url),
        RegistryClient(target_url),
        Pusher(source_url),
        Pusher(target_url),
    )
    try:
        yield both
    finally:
        for closable in (both.source, both.target, both.primary, both.secondary):
            await closable.aclose()


@pytest.fixture
async def s(registries) -> AsyncIterator[Sides]:
    async with sides(registries.primary, registries.secondary) as both:
        yield both


def uploads_of(logs: str, digest: str) -> int:
    """Completed blob uploads (PUT …?digest=) of `digest` in a registry's access log."""
    quoted = digest.replace(":", "%3A")
    return sum(
        1
        for method, uri, status in access_log(logs)
        if method == "PUT" and "/blobs/uploads/" in uri and quoted in uri and status == 201
    )


def mounts_of(logs: str, digest: str) -> int:
    quoted = digest.replace(":", "%3A")
    return sum(
        1
        for method, uri, status in access_log(logs)
        if method == "POST" and f"mount={quoted}" in uri and status == 201
    )


async def test_single_arch_image_pushed_by_skopeo(s: Sides, registries, tmp_path: Path) -> None:
    repo, image = unique("group/app"), make_image([os.urandom(4096), os.urandom(1000)])
    skopeo_push(
        write_oci_layout(tmp_path, "v1", image), "v1", f"{registries.primary[7:]}/{repo}:v1"
    )

    before = await compare_repository(s.source, s.target, repo)
    result = await sync_repository(s.source, s.target, repo)

    assert result.ok, result
    assert (result.synced_tags, result.blobs_copied) == (["v1"], 3)
    assert result.bytes_copied == sum(len(blob) for blob in image.blobs)
    assert await s.secondary.digest_of(repo, "v1") == image.digest
    assert before.missing == {"v1": image.digest}
    assert (await compare_repository(s.source, s.target, repo)).clean


async def test_oci_index_children_before_index(s: Sides, registries, tmp_path: Path) -> None:
    repo = unique("multi/oci")
    index = make_index(["linux/amd64", "linux/arm64", "linux/s390x"])
    skopeo_push(
        write_oci_layout(tmp_path, "v1", index), "v1", f"{registries.primary[7:]}/{repo}:v1"
    )
    assert await s.primary.digest_of(repo, "v1") == index.digest

    result = await sync_repository(s.source, s.target, repo)

    assert result.ok, result
    assert await s.secondary.digest_of(repo, "v1") == index.digest
    for child in index.children.values():
        assert await s.secondary.digest_of(repo, child.digest) == child.digest
    puts = [
        uri
        for method, uri, _ in access_log(registries.logs("secondary"))
        if method == "PUT" and uri.startswith(f"/v2/{repo}/manifests/")
    ]
    assert puts[-1] == f"/v2/{repo}/manifests/v1"
    assert sorted(puts[:-1]) == sorted(
        f"/v2/{repo}/manifests/{c.digest}" for c in index.children.values()
    )


async def test_docker_manifest_list(s: Sides) -> None:
    repo, index = unique("multi/docker"), make_index(["linux/amd64", "linux/ppc64le"], docker=True)
    await s.primary.index(repo, "latest", index)

    result = await sync_repository(s.source, s.target, repo)

    assert result.ok, result
    ref = await s.target.head_manifest(repo, "latest")
    assert ref is not None
    assert (ref.digest, ref.media_type) == (index.digest, DOCKER_MANIFEST_LIST)
    for child in index.children.values():
        assert await s.secondary.digest_of(repo, child.digest) == child.digest


async def test_shared_layers_are_mounted_not_copied(s: Sides, registries) -> None:
    base = os.urandom(300_000)
    repos = [unique(f"shared/app{i}") for i in range(3)]
    for repo in repos:
        await s.primary.image(repo, "v1", make_image([base, os.urandom(500)]))
    locations = BlobLocations()

    results = [
        await sync_repository(s.source, s.target, repo, blob_locations=locations) for repo in repos
    ]

    assert all(result.ok for result in results), results
    assert [r.blobs_copied for r in results] == [3, 2, 2]  # config + own layer after the first
    assert [r.blobs_mounted for r in results] == [0, 1, 1]
    logs = registries.logs("secondary")
    assert uploads_of(logs, sha256(base)) == 1
    assert mounts_of(logs, sha256(base)) == 2


async def test_identical_copies_in_flight_collapse_into_one(s: Sides, registries) -> None:
    base = os.urandom(2_000_000)
    repos = [unique(f"race/app{i}") for i in range(3)]
    for repo in repos:
        await s.primary.image(repo, "v1", make_image([base]))
    locations = BlobLocations()

    results = await asyncio.gather(
        *(sync_repository(s.source, s.target, r, blob_locations=locations) for r in repos)
    )

    assert all(result.ok for result in results), results
    assert sum(r.blobs_mounted for r in results) == 2
    assert uploads_of(registries.logs("secondary"), sha256(base)) == 1


async def test_overwritten_tag_follows_the_primary(s: Sides) -> None:
    repo, first, second = unique("group/moving"), make_image(), make_image()
    await s.primary.image(repo, "v1", first)
    assert (await sync_repository(s.source, s.target, repo)).ok
    await s.primary.image(repo, "v1", second)

    result = await sync_repository(s.source, s.target, repo)

    assert (result.ok, result.synced_tags) == (True, ["v1"])
    assert await s.secondary.digest_of(repo, "v1") == second.digest


async def test_a_removed_tag_never_takes_a_kept_tag_with_it(s: Sides) -> None:
    repo, shared, solo = unique("group/aliases"), make_image(), make_image()
    index = make_index(["linux/amd64", "linux/arm64"])
    amd64 = index.children["linux/amd64"]
    await s.primary.image(repo, "v1", shared)
    await s.primary.manifest(repo, "latest", shared.manifest, shared.media_type)
    await s.primary.image(repo, "solo", solo)
    await s.primary.index(repo, "multi", index)
    await s.primary.manifest(repo, "amd64", amd64.manifest, amd64.media_type)
    assert (await sync_repository(s.source, s.target, repo)).ok
    # Distribution can't delete a tag alone either: delete by digest, put back what stays.
    for digest in (shared.digest, solo.digest, amd64.digest):
        await s.primary.delete(repo, digest)
    await s.primary.manifest(repo, "latest", shared.manifest, shared.media_type)
    await s.primary.manifest(repo, amd64.digest, amd64.manifest, amd64.media_type)
    assert await s.primary.tags(repo) == ["latest", "multi"]

    result = await sync_repository(s.source, s.target, repo)

    assert sorted(result.deleted_tags) == ["amd64", "solo", "v1"]
    assert result.ok and not result.stale_tags
    assert await s.secondary.digest_of(repo, "latest") == shared.digest
    assert await s.secondary.digest_of(repo, "multi") == index.digest
    assert await s.secondary.digest_of(repo, amd64.digest) == amd64.digest  # index whole
    assert await s.secondary.tags(repo) == ["latest", "multi"]
    assert (await compare_repository(s.source, s.target, repo)).clean


async def test_repository_deleted_on_the_primary(s: Sides) -> None:
    repo, one, two = unique("group/gone"), make_image(), make_image()
    await s.primary.image(repo, "v1", one)
    await s.primary.image(repo, "v2", two)
    await s.primary.manifest(repo, "v2-alias", two.manifest, two.media_type)
    assert (await sync_repository(s.source, s.target, repo)).ok
    for digest in (one.digest, two.digest):
        await s.primary.delete(repo, digest)

    result = await sync_repository(s.source, s.target, repo)

    assert (result.ok, result.repository_deleted) == (True, True)
    assert sorted(result.deleted_tags) == ["v1", "v2", "v2-alias"]
    assert await s.secondary.tags(repo) == []
    assert (await compare_repository(s.source, s.target, repo)).clean


async def test_a_repository_the_primary_never_had_is_emptied(s: Sides) -> None:
    repo = unique("group/orphan")
    await s.secondary.image(repo, "v1", make_image())

    result = await sync_repository(s.source, s.target, repo)

    assert (result.ok, result.repository_deleted, result.deleted_tags) == (True, True, ["v1"])


async def test_delete_repository_removes_every_tag(s: Sides) -> None:
    repo, image = unique("group/removed"), make_image()
    await s.secondary.image(repo, "v1", image)
    await s.secondary.manifest(repo, "v2", image.manifest, image.media_type)

    result = await delete_repository(s.target, repo)

    assert (result.ok, sorted(result.deleted_tags)) == (True, ["v1", "v2"])
    assert await s.secondary.tags(repo) == []


async def test_1500_tags_paginated_on_both_sides(s: Sides, registries) -> None:
    repo, image = unique("group/many"), make_image()
    await s.primary.image(repo, "tag-0000", image)
    tags = [f"tag-{i:04d}" for i in range(1500)]
    limit = asyncio.Semaphore(32)

    async def put(tag: str) -> None:
        async with limit:
            await s.primary.manifest(repo, tag, image.manifest, image.media_type)

    await asyncio.gather(*(put(tag) for tag in tags[1:]))

    with RegistryProxy(registries.primary, page_size=100) as primary:
        async with sides(primary.url, registries.secondary) as first:
            result = await sync_repository(first.source, first.target, repo)
    assert (result.ok, len(result.synced_tags), result.blobs_copied) == (True, 1500, 2)
    assert primary.log.tag_pages == 15

    with RegistryProxy(registries.secondary, page_size=100) as secondary:
        async with sides(registries.primary, secondary.url) as again:
            noop = await sync_repository(again.source, again.target, repo)
    assert (noop.ok, len(noop.skipped_tags), noop.synced_tags) == (True, 1500, [])
    assert secondary.log.tag_pages == 15
    assert sorted(await s.secondary.tags(repo)) == tags


async def test_failed_primary_listing_deletes_nothing(registries) -> None:
    repo = unique("group/doomed")
    async with sides(registries.doomed, registries.secondary) as s:
        await s.primary.image(repo, "v1", make_image())
        assert (await sync_repository(s.source, s.target, repo)).ok
    registries.container("doomed").stop(timeout=1)

    fast = RetryPolicy(attempts=2, backoff=Backoff(0.01, 0.02))
    async with (
        RegistryClient(registries.doomed, retry=fast) as source,
        RegistryClient(registries.secondary) as target,
    ):
        result = await sync_repository(source, target, repo)
        assert await target.list_tags(repo) == ["v1"]
    assert not result.ok
    assert result.error and "listing the primary failed" in result.error
    assert result.deleted_tags == []


async def test_no_op_resync_skips_everything(s: Sides, registries) -> None:
    repo = unique("group/steady")
    await s.primary.image(repo, "v1", make_image())
    await s.primary.index(repo, "v2", make_index(["linux/amd64", "linux/arm64"]))
    assert (await sync_repository(s.source, s.target, repo)).ok
    writes_before = _writes(registries.logs("secondary"), repo)

    result = await sync_repository(s.source, s.target, repo)

    assert (result.ok, result.skipped_tags, result.synced_tags) == (True, ["v1", "v2"], [])
    assert (result.blobs_copied, result.blobs_mounted, result.blobs_present) == (0, 0, 0)
    assert _writes(registries.logs("secondary"), repo) == writes_before


def _writes(logs: str, repo: str) -> int:
    return sum(
        1
        for method, uri, _ in access_log(logs)
        if method in ("PUT", "POST", "PATCH", "DELETE") and uri.startswith(f"/v2/{repo}/")
    )


async def _tagged_later(
    s: Sides, repo: str, tag: str, image: Image, delay: float
) -> asyncio.Task[None]:
    """Push `image`'s blobs now and its manifest as `tag` after `delay` seconds, in a task:
    a tag that shows up on the primary while a sync is already looking for it."""
    for blob in image.blobs:
        await s.primary.blob(repo, blob)

    async def put_manifest() -> None:
        await asyncio.sleep(delay)
        await s.primary.manifest(repo, tag, image.manifest, image.media_type)

    return asyncio.create_task(put_manifest())


async def test_a_hinted_tag_not_yet_listed_is_waited_for(s: Sides) -> None:
    repo, image = unique("group/early"), make_image()
    await s.primary.image(repo, "v1", make_image())
    pushing = await _tagged_later(s, repo, "v2", image, 0.1)
    result = await sync_repository(
        s.source,
        s.target,
        repo,
        tags_hint={"v2"},
        options=SyncOptions(hint_retry_delays=(0.05, 0.1, 0.2, 0.4)),
    )
    await pushing

    assert result.ok, result
    assert sorted(result.synced_tags) == ["v1", "v2"]


async def test_a_hinted_tag_that_never_shows_is_not_concluded(s: Sides) -> None:
    repo, image = unique("group/ghost"), make_image()
    await s.primary.image(repo, "v1", image)
    await s.secondary.image(repo, "ghost", make_image())  # e.g. from an earlier sync

    result = await sync_repository(
        s.source, s.target, repo, tags_hint={"ghost"}, options=QUICK_HINTS
    )

    assert not result.ok
    assert "ghost" in result.failed_tags
    assert result.deleted_tags == []
    assert await s.secondary.tags(repo) == ["ghost", "v1"]


async def test_wrong_bytes_fail_the_tag_and_publish_nothing(s: Sides, registries) -> None:
    repo, image = unique("group/tampered"), make_image([os.urandom(50_000)])
    await s.primary.image(repo, "v1", image)
    with RegistryProxy(registries.primary) as proxy:
        proxy.corrupt.add(sha256(image.layers[0]))
        async with sides(proxy.url, registries.secondary) as lying:
            result = await sync_repository(lying.source, lying.target, repo)

    assert not result.ok
    assert "hashes to" in result.failed_tags["v1"]
    assert await s.secondary.digest_of(repo, "v1") is None
    assert await s.target.blob_exists(repo, sha256(image.layers[0])) is False


async def test_sync_between_tls_registries(registries) -> None:
    repo, index = unique("secure/app"), make_index(["linux/amd64", "linux/arm64"])
    ca = registries.ca_file
    async with (
        RegistryClient(registries.primary_tls, ca_file=ca) as source,
        RegistryClient(registries.secondary_tls, ca_file=ca) as target,
    ):
        async with Pusher(registries.primary_tls, ca_file=ca) as pusher:
            await pusher.index(repo, "v1", index)
        result = await sync_repository(source, target, repo)
        assert result.ok, result
        assert (await compare_repository(source, target, repo)).clean


async def test_hinted_only_pushes_the_hinted_tag_without_a_full_pass(s: Sides) -> None:
    repo, first, second = unique("group/incremental"), make_image(), make_image()
    await s.primary.image(repo, "v1", first)
    assert (await sync_repository(s.source, s.target, repo)).ok
    await s.secondary.image(repo, "extra", make_image())  # only a full pass would see it
    await s.primary.image(repo, "v2", second)

    result = await sync_repository(s.source, s.target, repo, tags_hint=["v2"], hinted_only=True)

    assert (result.ok, result.synced_tags, result.deleted_tags) == (True, ["v2"], [])
    assert await s.secondary.digest_of(repo, "v2") == second.digest
    assert "extra" in await s.secondary.tags(repo)
    full = await sync_repository(s.source, s.target, repo)
    assert (full.ok, full.deleted_tags) == (True, ["extra"])


async def test_a_hinted_tag_costs_one_request_to_the_primary_for_its_manifest(
    s: Sides, registries
) -> None:
    """A pushed tag is fetched by tag, its digest coming with the GET, not HEADed then
    fetched by digest: over a WAN each request to the primary is a round trip of the link
    (bench/RESULTS.md, scenario 11)."""
    repo, image = unique("group/one-trip"), make_image()
    await s.primary.image(repo, "v1", make_image())
    assert (await sync_repository(s.source, s.target, repo)).ok
    await s.primary.image(repo, "v2", image)
    manifests = f"/v2/{repo}/manifests/"
    with RegistryProxy(registries.primary) as proxy:
        async with sides(proxy.url, registries.secondary) as through:
            result = await sync_repository(
                through.source, through.target, repo, tags_hint=["v2"], hinted_only=True
            )
            requests = [r for r in proxy.log.requests if manifests in r]

    assert (result.ok, result.synced_tags) == (True, ["v2"])
    assert requests == [f"GET {manifests}v2"]
    assert await s.secondary.digest_of(repo, "v2") == image.digest


async def test_a_hinted_tag_linked_just_after_its_event_needs_no_full_pass(s: Sides) -> None:
    """The registry sends the push event before it links the tag: the hinted HEAD is looked
    up again after a short pause, so no pass of every tag follows (it would delete "extra")."""
    repo, image = unique("group/racing"), make_image()
    await s.primary.image(repo, "v1", make_image())
    assert (await sync_repository(s.source, s.target, repo)).ok
    await s.secondary.image(repo, "extra", make_image())  # only a full pass would see it
    linking = await _tagged_later(s, repo, "v2", image, 0.05)
    result = await sync_repository(
        s.source,
        s.target,
        repo,
        tags_hint=["v2"],
        hinted_only=True,
        options=SyncOptions(hinted_head_retry_delays=(0.2, 0.4)),
    )
    await linking

    assert (result.ok, result.synced_tags, result.deleted_tags) == (True, ["v2"], [])
    assert await s.secondary.digest_of(repo, "v2") == image.digest
    assert "extra" in await s.secondary.tags(repo)


async def test_hinted_only_falls_back_to_the_full_pass_when_a_hint_is_missing(s: Sides) -> None:
    repo, image = unique("group/fallback"), make_image()
    await s.primary.image(repo, "v1", image)
    await s.secondary.image(repo, "extra", make_image())

    result = await sync_repository(
        s.source,
        s.target,
        repo,
        tags_hint=["never"],
        hinted_only=True,
        options=QUICK_HINTS,
    )

    assert result.synced_tags == ["v1"] and result.deleted_tags == ["extra"]
    assert set(result.failed_tags) == {"never"} and not result.ok


async def test_a_tag_the_secondary_lacks_is_fetched_by_tag_without_a_head(
    s: Sides, registries
) -> None:
    """The primary's manifests are HEADed only to compare with a tag the secondary has.

    A tag the secondary lacks is fetched by tag (the digest comes with the GET); the no-op
    resync that follows HEADs every tag once and fetches nothing.
    """
    repo, shared, other = unique("group/fresh"), make_image([os.urandom(900)]), make_image()
    for tag in ("v1", "v1.0", "latest"):
        await s.primary.image(repo, tag, shared)
    await s.primary.image(repo, "v2", other)
    manifests = f"/v2/{repo}/manifests/"
    with RegistryProxy(registries.primary) as proxy:
        async with sides(proxy.url, registries.secondary) as through:
            full = await sync_repository(through.source, through.target, repo)
            full_requests = [r for r in proxy.log.requests if manifests in r]
            proxy.log.requests.clear()
            noop = await sync_repository(through.source, through.target, repo)
            noop_requests = [r for r in proxy.log.requests if manifests in r]

    tags = ["latest", "v1", "v1.0", "v2"]
    assert full.ok and sorted(full.synced_tags) == tags
    assert sorted(full_requests) == [f"GET {manifests}{tag}" for tag in tags]
    assert noop.ok and noop.synced_tags == [] and sorted(noop.skipped_tags) == tags
    assert sorted(noop_requests) == [f"HEAD {manifests}{tag}" for tag in tags]
    for tag in ("v1", "v1.0", "latest"):
        assert await s.secondary.digest_of(repo, tag) == shared.digest
    assert await s.secondary.digest_of(repo, "v2") == other.digest
