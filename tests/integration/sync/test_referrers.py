"""OCI 1.1 referrers (signatures, SBOMs: manifests with a `subject`, pushed by digest only)
are replicated and verified, from a primary with the referrers API or the tag fallback."""

from __future__ import annotations

import re
import uuid
from http.server import BaseHTTPRequestHandler

import pytest
from registry_kit import RegistryProxy

from gdk_geo.registry.client import RegistryClient
from gdk_geo.secondary.sync import sync_repository
from gdk_geo.secondary.verify import compare_repository
from testkit.images import OCI_INDEX, OCI_MANIFEST, Pusher, canonical, make_image, sha256

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
SIGNATURE = "application/vnd.example.signature.v1"


async def _push_referrer(pusher: Pusher, repo: str, subject: str, size: int) -> dict:
    """A signature-like manifest whose `subject` is `subject`, pushed by digest only; its
    descriptor as an index (or the referrers API) lists it."""
    payload = f"signed {subject} {uuid.uuid4()}".encode()
    for blob in (b"{}", payload):
        await pusher.blob(repo, blob)
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE,
            "config": {"mediaType": EMPTY_CONFIG, "digest": sha256(b"{}"), "size": 2},
            "layers": [{"mediaType": SIGNATURE, "digest": sha256(payload), "size": len(payload)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
        }
    )
    digest = await pusher.manifest(repo, sha256(manifest), manifest, OCI_MANIFEST)
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": len(manifest),
        "artifactType": SIGNATURE,
    }


def _index(descriptors: list[dict]) -> bytes:
    return canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})


async def _lose_and_repair(source: RegistryClient, target: RegistryClient, repo, referrer, subject):
    """Replicated and clean; then the referrer lost on the secondary is reported, and the
    next sync puts it back."""
    assert (await sync_repository(source, target, repo)).ok
    assert await target.head_manifest(repo, referrer) is not None
    assert (await compare_repository(source, target, repo)).clean
    async with Pusher(target.base_url) as secondary:
        await secondary.delete(repo, referrer)
    lost = await compare_repository(source, target, repo)
    assert not lost.clean and lost.missing_referrers == {referrer: subject}
    assert (await sync_repository(source, target, repo)).ok
    assert (await compare_repository(source, target, repo)).clean


async def test_referrers_in_the_tag_fallback_are_replicated_and_verified(registries) -> None:
    """Issue 13 #21, on Distribution 2.8 itself: it has no referrers API, so clients keep
    the `sha256-<hex>` index. The index is a tag and was copied, but a referrer the
    secondary lost was never noticed by verify nor restored by sync."""
    image, repo = make_image(), f"referrers/fallback-{uuid.uuid4().hex[:8]}"
    async with Pusher(registries.primary) as primary:
        subject = await primary.image(repo, "v1", image)
        referrer = await _push_referrer(primary, repo, subject, len(image.manifest))
        index = _index([referrer])
        await primary.manifest(repo, subject.replace(":", "-"), index, OCI_INDEX)
    async with (
        RegistryClient(registries.primary) as source,
        RegistryClient(registries.secondary) as target,
    ):
        await _lose_and_repair(source, target, repo, referrer["digest"], subject)
        assert source.supports_referrers is False  # asked once, a 404, then not again


class ReferrersProxy(RegistryProxy):
    """The real primary registry, plus the OCI 1.1 referrers API it lacks.

    Scripted because Distribution 2.8 (the registry these tests run) has no referrers API
    and no registry image with one can be pulled here. Everything else, the referrer's
    own manifest and blobs included, is the real registry's answer; only
    `GET /v2/<name>/referrers/<digest>` is answered from `referrers`, as a registry with
    the API would answer it: an image index, empty for a digest nothing refers to.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.referrers: dict[str, list[dict]] = {}

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        asked = re.fullmatch(r"/v2/.+/referrers/(sha256:[0-9a-f]{64})", handler.path)
        if method == "GET" and asked:
            body = _index(self.referrers.get(asked.group(1), []))
            self._reply(handler, 200, body, {"Content-Type": OCI_INDEX})
            return
        super()._serve(handler, method)


async def test_referrers_from_the_api_are_replicated_and_verified(registries) -> None:
    """Issue 13 #21: a referrer pushed by digest only, listed by the referrers API and by no
    tag, was never replicated, and verify said clean."""
    image, repo = make_image(), f"referrers/api-{uuid.uuid4().hex[:8]}"
    async with Pusher(registries.primary) as primary:
        subject = await primary.image(repo, "v1", image)
        referrer = await _push_referrer(primary, repo, subject, len(image.manifest))
    with ReferrersProxy(registries.primary) as proxy:
        proxy.referrers[subject] = [referrer]
        async with (
            RegistryClient(proxy.url) as source,
            RegistryClient(registries.secondary) as target,
        ):
            await _lose_and_repair(source, target, repo, referrer["digest"], subject)
            assert source.supports_referrers is True
