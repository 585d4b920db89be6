"""RegistryClient against real registries, plus scripted servers for failures on demand."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from registry_kit import RegistryProxy, ScriptedServer

from gdk_geo.registry.backoff import Backoff
from gdk_geo.registry.blobs import verified_chunks
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.copy import copy_blob
from gdk_geo.registry.errors import (
    BlobNotFound,
    DigestMismatch,
    RegistryError,
    RegistryUnavailable,
    RepositoryNotFound,
    TagDeletionUnsupported,
    TLSVerificationFailed,
)
from gdk_geo.registry.reference import OCI_INDEX
from gdk_geo.registry.transport import RetryPolicy
from testkit.images import Pusher, make_image, make_index, sha256
from testkit.net import free_port

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=3, backoff=Backoff(0.01, 0.05))


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def json_reply(document: dict, status: int = 200, **headers: str) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(document).encode()


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# -- without an engine: scripted servers -------------------------------------------------


async def test_listing_a_registry_that_does_not_answer_raises_instead_of_returning_empty() -> None:
    async with RegistryClient(f"http://127.0.0.1:{free_port()}", retry=FAST) as client:
        with pytest.raises(RegistryUnavailable):
            await client.list_tags("group/app")
        with pytest.raises(RegistryUnavailable):
            await client.catalog()


async def test_5xx_is_retried_with_backoff_and_then_succeeds() -> None:
    answers = iter([(503, {}, b""), (502, {}, b""), json_reply({"tags": ["v1"]})])
    with ScriptedServer(lambda *_: next(answers)) as server:
        async with RegistryClient(server.url, retry=FAST) as client:
            assert await client.list_tags("group/app") == ["v1"]
    assert len(server.seen) == 3


async def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    with ScriptedServer(lambda *_: json_reply({"errors": [{"code": "UNKNOWN"}]}, 500)) as server:
        async with RegistryClient(server.url, retry=FAST) as client:
            with pytest.raises(RegistryError) as caught:
                await client.list_tags("group/app")
    assert caught.value.status == 500
    assert len(server.seen) == FAST.attempts


async def test_link_pagination_is_followed_and_a_loop_is_an_error() -> None:
    pages = {
        "/v2/group/app/tags/list?n=1000": (["a", "b"], "</v2/group/app/tags/list?last=b&n=2>"),
        "/v2/group/app/tags/list?last=b&n=2": (["c", "d"], "/v2/group/app/tags/list?last=d"),
        "/v2/group/app/tags/list?last=d": (["e"], None),
        "/v2/loop/tags/list?n=1000": (["x"], "</v2/loop/tags/list?last=x>"),
        "/v2/loop/tags/list?last=x": (["y"], "</v2/loop/tags/list?last=x>"),
    }

    def answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        tags, link = pages[path]
        link = link if link is None or link.startswith("<") else f"<{link}>"
        extra = {"Link": f'{link}; rel="next"'} if link else {}
        return json_reply({"tags": tags}, **extra)

    with ScriptedServer(answer) as server:
        async with RegistryClient(server.url, retry=FAST) as client:
            assert await client.list_tags("group/app") == ["a", "b", "c", "d", "e"]
            with pytest.raises(RegistryError, match="loops"):
                await client.list_tags("loop")


async def test_bearer_challenge_is_answered_with_a_token_once_per_repository() -> None:
    token_requests: list[dict] = []

    def answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        if path.startswith("/jwt/auth"):
            token_requests.append({"path": path, "auth": headers.get("Authorization")})
            return json_reply({"token": "t0ken"})
        if headers.get("Authorization") != "Bearer t0ken":
            challenge = (
                f'Bearer realm="{server.url}/jwt/auth",service="container_registry",'
                'scope="repository:group/app:pull"'
            )
            return json_reply(
                {"errors": [{"code": "UNAUTHORIZED"}]}, 401, **{"WWW-Authenticate": challenge}
            )
        return json_reply({"tags": ["v1"]})

    with ScriptedServer(answer) as server:
        async with RegistryClient(server.url, username="root", password="pw") as client:
            assert await client.list_tags("group/app") == ["v1"]
            assert await client.list_tags("group/app") == ["v1"]
    assert len(token_requests) == 1
    assert "scope=repository%3Agroup%2Fapp%3Apull" in token_requests[0]["path"]
    assert token_requests[0]["auth"].startswith("Basic ")


async def test_basic_challenge_is_answered_and_remembered() -> None:
    def answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        if headers.get("Authorization", "").startswith("Basic "):
            return json_reply({"tags": ["v1"]})
        return json_reply({}, 401, **{"WWW-Authenticate": 'Basic realm="registry"'})

    with ScriptedServer(answer) as server:
        async with RegistryClient(server.url, username="root", password="pw") as client:
            assert await client.list_tags("group/app") == ["v1"]
            assert await client.list_tags("group/app") == ["v1"]
    # One refusal, then the credentials go with every request without being asked again.
    sent = [headers.get("Authorization", "-")[:6] for _, _, headers in server.seen]
    assert sent == ["-", "Basic ", "Basic "]


async def test_a_refused_token_is_fetched_again() -> None:
    tokens = iter(["first", "second"])
    valid = {"token": "first"}

    def answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        if path.startswith("/jwt/auth"):
            return json_reply({"token": next(tokens)})
        if headers.get("Authorization") != f"Bearer {valid['token']}":
            challenge = f'Bearer realm="{server.url}/jwt/auth",scope="repository:g/a:pull"'
            return json_reply({}, 401, **{"WWW-Authenticate": challenge})
        return json_reply({"tags": ["v1"]})

    with ScriptedServer(answer) as server:
        async with RegistryClient(server.url) as client:
            assert await client.list_tags("g/a") == ["v1"]
            valid["token"] = "second"  # the first token expired
            assert await client.list_tags("g/a") == ["v1"]
    assert sum(1 for _, path, _ in server.seen if path.startswith("/jwt/auth")) == 2


async def test_a_redirected_blob_is_followed_and_verified() -> None:
    """Registries on object storage answer a blob GET with a redirect to the bytes."""
    data = b"layer bytes" * 100
    digest = sha256(data)

    def answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        if path == f"/v2/g/a/blobs/{digest}":
            return 307, {"Location": "/storage/abc?signature=x%2By"}, b""
        if path == "/storage/abc?signature=x%2By":
            return 200, {"Content-Type": "application/octet-stream"}, data
        return json_reply({}, 404)

    with ScriptedServer(answer) as server:
        async with (
            RegistryClient(server.url) as client,
            client.open_blob("g/a", digest, len(data)) as chunks,
        ):
            received = b"".join([chunk async for chunk in chunks])
    assert received == data


async def test_an_upload_keeps_the_registrys_state_token_as_sent() -> None:
    """The upload URL's `_state` is the registry's own (signed) token: `?digest=` is added
    next to it, never re-encoded."""
    data = b"x" * 512
    digest = sha256(data)
    state = "/v2/g/a/blobs/uploads/u1?_state=a%2Bb%2F%3D%3D"

    def answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        if method == "POST":
            return 202, {"Location": state}, b""
        if method == "PUT" and path.startswith(state + "&digest="):
            return 201, {"Docker-Content-Digest": digest}, b""
        return json_reply({"errors": [{"code": "BLOB_UPLOAD_INVALID"}]}, 400)

    with ScriptedServer(answer) as server:
        async with RegistryClient(server.url) as client:
            await client.upload_blob("g/a", digest, chunks_of(data), len(data))
    put = [path for method, path, _ in server.seen if method == "PUT"]
    assert put == [f"{state}&digest=sha256%3A{digest.split(':')[1]}"]


def _upload_target(opened: threading.Event) -> ScriptedServer:
    """A target registry that opens an upload session on POST (setting `opened`), stores
    any PUT into it, and cancels it on DELETE."""
    session = "/v2/g/a/blobs/uploads/u1?_state=s"

    def answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        if method == "POST":
            opened.set()
            return 202, {"Location": session}, b""
        if method == "PUT" and path.startswith(session + "&digest="):
            digest = path.split("&digest=", 1)[1].replace("%3A", ":")
            return 201, {"Docker-Content-Digest": digest}, b""
        if method == "DELETE" and path == session:
            return 204, {}, b""
        return json_reply({"errors": [{"code": "BLOB_UPLOAD_INVALID"}]}, 400)

    return ScriptedServer(answer)


async def test_a_copy_opens_its_upload_while_the_source_is_still_answering() -> None:
    """The target's upload session does not wait for the source's answer: over a WAN the
    POST hides behind the GET's round trip (bench/RESULTS.md, scenario 11)."""
    data = random.randbytes(2048)
    digest, opened, seen_first = sha256(data), threading.Event(), []

    def slow_source(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        seen_first.append(opened.wait(timeout=5))  # answer once the target saw the POST
        return 200, {"Docker-Content-Digest": digest}, data

    with ScriptedServer(slow_source) as source_server, _upload_target(opened) as target_server:
        async with (
            RegistryClient(source_server.url) as source,
            RegistryClient(target_server.url) as target,
        ):
            assert await copy_blob(source, "g/a", target, "g/a", digest, len(data)) == len(data)
    assert seen_first == [True]
    assert [method for method, _, _ in target_server.seen] == ["POST", "PUT"]


async def test_an_upload_opened_for_a_blob_the_source_lacks_is_cancelled() -> None:
    digest, opened = sha256(b"gone"), threading.Event()

    def source_answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        opened.wait(timeout=5)  # the session is open before the source says no
        return json_reply({"errors": [{"code": "BLOB_UNKNOWN"}]}, 404)

    with ScriptedServer(source_answer) as source_server, _upload_target(opened) as target_server:
        async with (
            RegistryClient(source_server.url, retry=FAST) as source,
            RegistryClient(target_server.url, retry=FAST) as target,
        ):
            with pytest.raises(BlobNotFound):
                await copy_blob(source, "g/a", target, "g/a", digest, 4)
    assert [method for method, _, _ in target_server.seen] == ["POST", "DELETE"]


async def test_names_that_would_escape_the_url_path_are_refused() -> None:
    async with RegistryClient("http://127.0.0.1:9") as client:
        for bad in ("../etc", "Group/App", "a//b", ""):
            with pytest.raises(ValueError):
                await client.list_tags(bad)
        with pytest.raises(ValueError):
            await client.head_manifest("group/app", "sha256:abc")


async def test_verified_chunks_fails_before_the_stream_ends() -> None:
    data = b"hello world"
    good = [
        chunk async for chunk in verified_chunks(chunks_of(data[:5], data[5:]), sha256(data), 11)
    ]
    assert b"".join(good) == data
    seen: list[bytes] = []
    with pytest.raises(DigestMismatch):
        async for chunk in verified_chunks(chunks_of(b"hello", b" w0rld"), sha256(data), 11):
            seen.append(chunk)
    with pytest.raises(DigestMismatch, match="more than"):
        async for chunk in verified_chunks(chunks_of(b"hello world!"), sha256(data), 11):
            seen.append(chunk)


# -- against real registries -------------------------------------------------------------


@pytest.mark.docker
async def test_unknown_repository_is_distinct_from_an_empty_one(registries) -> None:
    repo = unique("nobody/home")
    async with RegistryClient(registries.primary) as client:
        await client.ping()
        with pytest.raises(RepositoryNotFound):
            await client.list_tags(repo)
        assert await client.head_manifest(repo, "latest") is None


@pytest.mark.docker
async def test_head_manifest_accepts_every_manifest_type(registries) -> None:
    repo, index = unique("multi/arch"), make_index(["linux/amd64", "linux/arm64"])
    async with Pusher(registries.primary) as pusher:
        await pusher.index(repo, "v1", index)
        bare = await pusher.http.head(f"/v2/{repo}/manifests/v1")  # no Accept, like GitLab's
    assert bare.status_code == 404  # why GitLab skipped multi-arch tags
    async with RegistryClient(registries.primary) as client:
        ref = await client.head_manifest(repo, "v1")
        manifest = await client.get_manifest(repo, "v1")
    assert ref is not None
    assert (ref.digest, ref.media_type, ref.size) == (index.digest, OCI_INDEX, len(index.manifest))
    assert (manifest.raw, manifest.media_type, manifest.digest) == (
        index.manifest,
        OCI_INDEX,
        index.digest,
    )


@pytest.mark.docker
async def test_distribution_2_8_cannot_delete_a_tag_by_name(registries) -> None:
    repo, image = unique("tags/delete"), make_image()
    async with Pusher(registries.secondary) as pusher:
        await pusher.image(repo, "v1", image)
        await pusher.manifest(repo, "v2", image.manifest, image.media_type)
        async with RegistryClient(registries.secondary) as client:
            with pytest.raises(TagDeletionUnsupported) as caught:
                await client.delete_tag(repo, "v1")
            assert (caught.value.status, caught.value.code) == (400, "DIGEST_INVALID")
            assert client.supports_tag_deletion is False
            assert await pusher.tags(repo) == ["v1", "v2"]
            # By digest, both tags go: the reason a sync must not delete shared digests.
            assert await client.delete_manifest(repo, image.digest) is True
            assert await pusher.tags(repo) == []
            assert await client.delete_manifest(repo, image.digest) is False


@pytest.mark.docker
async def test_mount_links_a_blob_from_another_repository(registries) -> None:
    source, other = unique("mount/source"), unique("mount/target")
    image = make_image()
    async with Pusher(registries.secondary) as pusher:
        await pusher.image(source, "v1", image)
    layer = sha256(image.layers[0])
    async with RegistryClient(registries.secondary) as client:
        assert await client.blob_exists(other, layer) is False
        assert await client.mount_blob(other, layer, source) is True
        assert await client.blob_exists(other, layer) is True
        missing = sha256(b"never pushed")
        assert await client.mount_blob(other, missing, source) is False
    uploads = [line for line in registries.logs("secondary").splitlines() if "DELETE" in line]
    assert any("/blobs/uploads/" in line for line in uploads), "the 202 upload was not cancelled"


@pytest.mark.docker
async def test_catalog_and_tags_follow_link_pagination(registries) -> None:
    repos = sorted(unique(f"paged/r{i}") for i in range(3))
    image = make_image()
    async with Pusher(registries.primary) as pusher:
        for repo in repos:
            await pusher.image(repo, "t00", image)
        tags = [f"t{i:02d}" for i in range(23)]
        for tag in tags[1:]:
            await pusher.manifest(repos[0], tag, image.manifest, image.media_type)
    with RegistryProxy(registries.primary, page_size=2) as proxy:
        async with RegistryClient(proxy.url) as client:
            assert sorted(await client.list_tags(repos[0])) == tags
            assert set(repos) <= set(await client.catalog())
    assert proxy.log.tag_pages == 12
    assert proxy.log.catalog_pages >= 2  # the registry's own Link, with n capped at 2


@pytest.mark.docker
async def test_big_blob_is_streamed_in_bounded_memory(registries) -> None:
    repo, size, piece = unique("big/blob"), 64 * 1024 * 1024, 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        for seed in range(size // piece):  # regenerated on demand: the test holds no 64 MiB either
            yield random.Random(seed).randbytes(piece)

    hasher = hashlib.sha256()
    async for chunk in body():
        hasher.update(chunk)
    digest = f"sha256:{hasher.hexdigest()}"
    async with httpx.AsyncClient(base_url=registries.primary, timeout=60) as http:
        start = await http.post(f"/v2/{repo}/blobs/uploads/")
        location = start.url.join(start.headers["Location"]).copy_merge_params({"digest": digest})
        assert (await http.put(location, content=body())).status_code == 201

    async with (
        RegistryClient(registries.primary, chunk_size=256 * 1024) as source,
        RegistryClient(registries.secondary) as target,
    ):
        tracemalloc.start()
        try:
            copied = await copy_blob(source, repo, target, repo, digest, size)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert copied == size
        assert await target.blob_exists(repo, digest)
    assert peak < 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while copying 64 MiB"


@pytest.mark.docker
async def test_a_copy_cut_off_mid_stream_starts_again(registries) -> None:
    repo, data = unique("cut/short"), random.randbytes(300_000)
    digest, gets = sha256(data), []

    def answer(method: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
        gets.append(path)
        cut = len(gets) == 1
        headers = {"Content-Length": str(len(data)), "Docker-Content-Digest": digest}
        return 200, headers, data[: len(data) // 2] if cut else data

    with ScriptedServer(answer) as server:
        async with (
            RegistryClient(server.url) as source,
            RegistryClient(registries.secondary, retry=FAST) as target,
        ):
            assert await copy_blob(source, repo, target, repo, digest, len(data)) == len(data)
            assert await target.blob_exists(repo, digest)
    assert gets == [f"/v2/{repo}/blobs/{digest}"] * 2


@pytest.mark.docker
async def test_wrong_bytes_from_the_source_are_refused(registries) -> None:
    repo, image = unique("lying/source"), make_image([random.randbytes(100_000)])
    async with Pusher(registries.primary) as pusher:
        await pusher.image(repo, "v1", image)
    layer = sha256(image.layers[0])
    with RegistryProxy(registries.primary) as proxy:
        proxy.corrupt.add(layer)
        async with (
            RegistryClient(proxy.url) as source,
            RegistryClient(registries.secondary) as target,
        ):
            with pytest.raises(DigestMismatch):
                await copy_blob(source, repo, target, repo, layer, len(image.layers[0]))
            assert await target.blob_exists(repo, layer) is False


@pytest.mark.docker
async def test_tls_is_verified_against_the_ca_file(registries) -> None:
    async with RegistryClient(registries.primary_tls, ca_file=registries.ca_file) as client:
        await client.ping()
        with pytest.raises(RepositoryNotFound):
            await client.list_tags(unique("tls/none"))


@pytest.mark.docker
async def test_an_unverifiable_certificate_is_refused_at_once(registries) -> None:
    async with RegistryClient(registries.primary_tls, retry=RetryPolicy(attempts=4)) as client:
        with pytest.raises(TLSVerificationFailed, match="ca_file"):
            await client.ping()
