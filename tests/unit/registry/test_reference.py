"""The distribution grammar: repository names, tags, digests, media types and API paths."""

from __future__ import annotations

import pytest

from gdk_geo.registry import reference
from gdk_geo.registry.reference import (
    blob_path,
    check_digest,
    check_reference,
    check_repository,
    digest_of,
    is_digest,
    is_manifest_media_type,
    is_repository,
    is_tag,
    manifest_path,
    tags_path,
    uploads_path,
)

SHA256 = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "name",
    ["app", "group/app", "a/b/c", "my-app", "my--app", "my_app", "my__app", "v1.2", "a" * 255],
)
def test_valid_repository_names(name: str) -> None:
    assert is_repository(name)
    assert check_repository(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "App",
        "group/",
        "/app",
        "a//b",
        "../etc",
        "a/../b",
        "app-",
        "-app",
        "a___b",
        "a._b",
        "café",
        "a b",
        "app\n",
        "a" * 256,
        "a%2fb",
    ],
)
def test_invalid_repository_names(name: str) -> None:
    assert not is_repository(name)
    with pytest.raises(ValueError):
        check_repository(name)


@pytest.mark.parametrize("tag", ["latest", "v1", "V1.2.3-rc_1", "_x", "t" * 128])
def test_valid_tags(tag: str) -> None:
    assert is_tag(tag)
    assert check_reference(tag) == tag


@pytest.mark.parametrize(
    "tag", ["", ".v1", "-v1", "v1/evil", "v 1", "v1\n", "t" * 129, "café", "ü", "v1:latest", "١"]
)
def test_invalid_tags(tag: str) -> None:
    assert not is_tag(tag)


@pytest.mark.parametrize("digest", [SHA256, "sha384:" + "0" * 96, "sha512:" + "f" * 128])
def test_the_algorithms_distribution_accepts(digest: str) -> None:
    assert is_digest(digest)
    assert check_digest(digest) == digest
    assert check_reference(digest) == digest
    assert not is_tag(digest)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "0" * 63,
        "sha256:" + "0" * 65,
        "sha256:" + "A" * 64,
        "SHA256:" + "0" * 64,
        "sha384:" + "0" * 64,
        "sha512:" + "0" * 64,
        "md5:" + "0" * 32,
        "blake3:" + "0" * 64,
        "sha256" + "0" * 64,
        ":" + "0" * 64,
        SHA256 + "\n",
        "sha256:" + "０" * 64,
    ],
)
def test_invalid_digests(digest: str) -> None:
    assert not is_digest(digest)
    with pytest.raises(ValueError):
        check_digest(digest)


def test_digest_of_uses_the_named_algorithm() -> None:
    assert is_digest(digest_of(b"x"))
    assert digest_of(b"x", "sha512").startswith("sha512:")
    with pytest.raises(ValueError):
        digest_of(b"x", "md5")


def test_manifest_media_types_include_schema1_for_triage_only() -> None:
    assert is_manifest_media_type(reference.OCI_INDEX)
    assert is_manifest_media_type("Application/VND.OCI.image.manifest.v1+json; charset=utf-8")
    assert is_manifest_media_type(reference.DOCKER_SCHEMA1_SIGNED)
    assert reference.DOCKER_SCHEMA1 not in reference.MANIFEST_MEDIA_TYPES  # never copied
    assert not is_manifest_media_type("application/vnd.oci.image.layer.v1.tar+gzip")
    assert not is_manifest_media_type("application/octet-stream")
    assert set(reference.MANIFEST_MEDIA_TYPES) >= reference.INDEX_MEDIA_TYPES
    assert reference.ACCEPT_MANIFESTS.split(", ") == list(reference.MANIFEST_MEDIA_TYPES)


def test_paths_are_built_from_checked_parts() -> None:
    assert tags_path("group/app") == "/v2/group/app/tags/list"
    assert manifest_path("group/app", "v1") == "/v2/group/app/manifests/v1"
    assert manifest_path("group/app", SHA256) == f"/v2/group/app/manifests/{SHA256}"
    assert blob_path("group/app", SHA256) == f"/v2/group/app/blobs/{SHA256}"
    assert uploads_path("group/app") == "/v2/group/app/blobs/uploads/"


@pytest.mark.parametrize(
    ("build", "args"),
    [
        (tags_path, ("../etc",)),
        (manifest_path, ("group/app", "v1/../../x")),
        (manifest_path, ("group/app", "v1?n=1")),
        (manifest_path, ("Group/app", "v1")),
        (blob_path, ("group/app", "v1")),
        (blob_path, ("group/app", "sha256:../..")),
        (uploads_path, ("group/app#",)),
    ],
)
def test_paths_refuse_what_the_grammar_refuses(build, args) -> None:
    with pytest.raises(ValueError):
        build(*args)
