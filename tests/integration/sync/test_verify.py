"""Verification: checksums of sorted tag→digest pairs, and the differences behind them."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from gdk_geo.registry.client import RegistryClient
from gdk_geo.secondary.sync import sync_repository
from gdk_geo.secondary.verify import checksum, compare_repository, diff, tag_digests
from testkit.images import Pusher, make_image

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_checksum_is_over_sorted_lines_and_ignores_order() -> None:
    expected = hashlib.sha256(f"latest {B}\nv1 {A}\n".encode()).hexdigest()
    assert checksum({"v1": A, "latest": B}) == expected
    assert checksum({"latest": B, "v1": A}) == expected
    assert checksum({"v1": B, "latest": B}) != expected
    assert checksum({}) == hashlib.sha256(b"").hexdigest()


def test_diff_names_missing_extra_and_mismatched_tags() -> None:
    found = diff("group/app", {"v1": A, "v2": A, "v3": B}, {"v2": B, "v3": B, "old": A})
    assert not found.clean
    assert (found.missing, found.extra, found.mismatched) == ({"v1": A}, {"old": A}, {"v2": (A, B)})
    assert diff("group/app", {"v1": A}, {"v1": A}).clean


@pytest.mark.anyio
@pytest.mark.docker
async def test_differences_before_sync_and_clean_after(registries) -> None:
    repo, one, two = f"verify/app-{uuid.uuid4().hex[:8]}", make_image(), make_image()
    async with Pusher(registries.primary) as primary, Pusher(registries.secondary) as secondary:
        await primary.image(repo, "v1", one)
        await primary.image(repo, "v2", two)
        await secondary.image(repo, "v2", one)  # wrong digest
        await secondary.manifest(repo, "stale", one.manifest, one.media_type)
        async with (
            RegistryClient(registries.primary) as source,
            RegistryClient(registries.secondary) as target,
        ):
            before = await compare_repository(source, target, repo)
            assert await tag_digests(source, repo) == {"v1": one.digest, "v2": two.digest}
            await secondary.delete(repo, one.digest)  # let the sync start from a clean slate
            assert (await sync_repository(source, target, repo)).ok
            after = await compare_repository(source, target, repo)
            unknown = await compare_repository(source, target, f"verify/none-{uuid.uuid4().hex}")

    assert not before.clean
    assert before.missing == {"v1": one.digest}
    assert before.extra == {"stale": one.digest}
    assert before.mismatched == {"v2": (two.digest, one.digest)}
    assert before.source_checksum == after.source_checksum
    assert after.clean
    assert after.source_checksum == after.target_checksum
    assert unknown.clean  # unknown on both sides: nothing to differ
