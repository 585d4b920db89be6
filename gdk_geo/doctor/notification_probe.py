"""Prove that the primary registry's notifications reach the primary's Geo event log.

Reading both configuration files tells us the secret and the URL agree; only a real push
tells us a notification actually arrives (the registry sends them from an in-memory queue,
and a wrong URL, a refused secret or a service that is down all look the same from the
outside: nothing happens). So `geo.check` pushes a tiny, unique image to a scratch
repository, waits for its event in the event API the secondary reads, and deletes the
probe again, the way GitLab's `gitlab:geo:check` exercises the real path rather than
trusting the settings.

The probe is an OCI image of one empty layer and a config naming the probe tag, so every
run's manifest digest is new and deleting it by digest removes only the probe's own tag.
Its two small blobs stay in storage until the registry's garbage collection, like any
deleted image's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import ssl
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from gdk_geo.registry import http
from gdk_geo.registry.auth import MintedTokens
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.errors import RegistryError
from gdk_geo.registry.reference import OCI_MANIFEST

PROBE_REPOSITORY = "gdk-geo-check/probe"
EVENT_TIMEOUT = 5.0  # the registry delivers within milliseconds; 5 s covers one backoff
REPLICA_TIMEOUT = 5.0
POLL_SECONDS = 1  # the event API's long-poll `wait`, in whole seconds
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


class ProbeFailed(Exception):
    """The probe could not show a delivery; the message says which step failed."""


@dataclass(frozen=True)
class Endpoint:
    """A registry to push to or look at, and the CA bundle that verifies its certificate."""

    url: str
    ca_file: Path
    tokens: MintedTokens | None = None  # with registry auth on: tokens minted with the node's key


@dataclass(frozen=True)
class Delivery:
    """A delivered probe: its tag, the event that recorded it, and whether it replicated."""

    tag: str
    event_id: int
    seconds: float
    replicated: bool | None  # None when no replica was asked about


@dataclass(frozen=True)
class ProbeImage:
    """The blobs and manifest of one probe image."""

    config: bytes
    layer: bytes
    manifest: bytes


def probe_image(tag: str) -> ProbeImage:
    """An image no other push produces: its config carries `tag`, so its digest is unique."""
    empty_tar = io.BytesIO()
    tarfile.open(fileobj=empty_tar, mode="w").close()
    layer = gzip.compress(empty_tar.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.gdk-geo.probe": tag}},
            "rootfs": {"type": "layers", "diff_ids": [_digest(empty_tar.getvalue())]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": LAYER_MEDIA_TYPE, "digest": _digest(layer), "size": len(layer)}
            ],
        }
    ).encode()
    return ProbeImage(config, layer, manifest)


def probe_delivery(
    registry: Endpoint,
    service_url: str,
    node_token: str,
    replica: Endpoint | None = None,
    timeout: float = EVENT_TIMEOUT,
) -> Delivery:
    """Push a probe to `registry`, wait for its event at `service_url`, then delete it.

    With `replica`, wait (briefly) for the secondary to hold the probe before deleting it,
    so the cleanup does not race the worker's sync of the push. Raises `ProbeFailed`.
    """
    return asyncio.run(_probe(registry, service_url, node_token, replica, timeout))


async def _probe(
    registry: Endpoint,
    service_url: str,
    node_token: str,
    replica: Endpoint | None,
    timeout: float,
) -> Delivery:
    tag = f"check-{int(time.time())}-{uuid.uuid4().hex[:8]}"
    image = probe_image(tag)
    events = EventReader(service_url, node_token)
    async with RegistryClient(
        registry.url, ca_file=registry.ca_file, tokens=registry.tokens
    ) as client:
        after = await events.last_id()
        started = time.monotonic()
        digest = await _push(client, tag, image)
        try:
            event_id = await events.wait_for(PROBE_REPOSITORY, tag, after, timeout)
            seconds = time.monotonic() - started
            replicated = await _wait_replicated(replica, tag) if replica else None
        finally:
            await _delete(client, digest)
    return Delivery(tag, event_id, seconds, replicated)


async def _push(client: RegistryClient, tag: str, image: ProbeImage) -> str:
    try:
        for blob in (image.layer, image.config):
            await client.upload_blob(PROBE_REPOSITORY, _digest(blob), _once(blob), len(blob))
        return await client.put_manifest(PROBE_REPOSITORY, tag, image.manifest, OCI_MANIFEST)
    except RegistryError as exc:
        raise ProbeFailed(f"pushing the probe image to {client.base_url} failed: {exc}") from None


async def _delete(client: RegistryClient, digest: str) -> None:
    """Remove the probe's manifest (and so its tag); a failure leaves one small tag behind."""
    with contextlib.suppress(RegistryError):  # the probe has told us what it could
        await client.delete_manifest(PROBE_REPOSITORY, digest)


async def _wait_replicated(replica: Endpoint, tag: str) -> bool:
    deadline = time.monotonic() + REPLICA_TIMEOUT
    async with RegistryClient(
        replica.url, ca_file=replica.ca_file, tokens=replica.tokens
    ) as client:
        while time.monotonic() < deadline:
            try:
                if await client.head_manifest(PROBE_REPOSITORY, tag) is not None:
                    return True
            except RegistryError:
                return False
            await asyncio.sleep(0.1)
    return False


class EventReader:
    """Reads the primary's event API the way the secondary does: bearer node token."""

    def __init__(self, service_url: str, node_token: str) -> None:
        self.url = service_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {node_token}"}

    async def last_id(self) -> int:
        """The newest event id now, so the wait only looks at what comes after the push."""
        data = await self._get("/-/health", {})
        return int(data.get("last_event_id") or 0)

    async def wait_for(self, repository: str, tag: str, after: int, timeout: float) -> int:
        """The id of the `updated` event for repository:tag; `ProbeFailed` after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            params = {"after": after, "limit": 1000, "wait": POLL_SECONDS}
            page = await self._get("/api/v4/geo/events", params)
            for event in page.get("events") or []:
                after = max(after, int(event["id"]))
                if event.get("repository") == repository and event.get("tag") == tag:
                    return int(event["id"])
        raise ProbeFailed(
            f"the push of {repository}:{tag} reached the registry, but no event for it "
            f"appeared in {self.url}/api/v4/geo/events within {timeout:.0f}s: the registry "
            "is not delivering notifications (wrong URL or secret, or the service refuses them)"
        )

    async def _get(self, path: str, params: dict[str, int]) -> dict:
        try:
            async with http.httpx_async_client(timeout=POLL_SECONDS + 5.0) as client:
                response = await client.get(self.url + path, params=params, headers=self.headers)
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise ProbeFailed(
                f"the primary Geo service does not answer at {self.url} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if response.status_code != 200:
            raise ProbeFailed(f"{self.url}{path} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise ProbeFailed(f"{self.url}{path} did not answer JSON") from None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
