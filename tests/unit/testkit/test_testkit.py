"""The shared test kit: what its images claim matches their bytes; waits poll and fail;
seeded storage has the layout the registry reads (served for real in test_bench_harness)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from testkit.images import file_blob, make_image, make_index, memory_blob, seeded_blob, sha256
from testkit.net import free_ports, wait_for
from testkit.sites import Site, parse_up
from testkit.storage import V2, link_layer, repository_dir, write_blob, write_image


def _bytes(blob) -> bytes:
    return b"".join(blob.read())


def test_every_blob_kind_has_the_digest_and_size_of_its_bytes(tmp_path) -> None:
    for blob in (
        memory_blob(b"x" * 3_000_000),
        seeded_blob("a seed", 2_500_000),
        file_blob(1_500_000, tmp_path),
    ):
        data = _bytes(blob)
        assert (blob.digest, blob.size) == ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        assert _bytes(blob) == data  # read again, the same bytes


def test_a_seeded_blob_is_reproducible_and_seeds_differ() -> None:
    assert seeded_blob("s", 1000).digest == seeded_blob("s", 1000).digest
    assert seeded_blob("s", 1000).digest != seeded_blob("t", 1000).digest


def test_an_image_manifest_describes_its_config_and_layers() -> None:
    image = make_image([b"one", b"two"], docker=True, platform="linux/arm64")
    manifest = json.loads(image.manifest)
    assert manifest["mediaType"] == image.media_type
    assert manifest["config"]["digest"] == sha256(image.config)
    assert [layer["digest"] for layer in manifest["layers"]] == [sha256(b"one"), sha256(b"two")]
    assert json.loads(image.config)["architecture"] == "arm64"
    assert make_image([b"one"]).digest != make_image([b"one"]).digest  # each image is unique


def test_an_index_lists_its_children_by_platform() -> None:
    index = make_index(["linux/amd64", "linux/arm64"])
    listed = json.loads(index.manifest)["manifests"]
    assert [m["digest"] for m in listed] == [c.digest for c in index.children.values()]
    assert [m["platform"]["architecture"] for m in listed] == ["amd64", "arm64"]


def test_free_ports_are_distinct() -> None:
    ports = free_ports(8)
    assert len(set(ports)) == 8


def test_free_ports_of_parallel_workers_never_meet_and_are_not_ephemeral(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A port a test freed was handed by the kernel to another xdist worker's registry."""
    seen: dict[str, set[int]] = {}
    for worker in ("gw0", "gw1", ""):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        seen[worker] = set(free_ports(20))
        low, high = (
            int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        )
        assert not any(low <= port <= high for port in seen[worker])
    assert not seen["gw0"] & seen["gw1"] and not seen["gw1"] & seen[""]


def test_a_process_does_not_hand_out_a_port_again_soon() -> None:
    first = free_ports(50)
    assert not set(first) & set(free_ports(50))


def test_wait_for_returns_the_first_truthy_value_and_rides_out_transport_errors() -> None:
    answers = iter([httpx.ConnectError("not yet"), None, 0, "ready"])

    def probe() -> str | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for("the answer", probe, interval=0) == "ready"


def test_wait_for_fails_naming_what_it_waited_for_with_the_log() -> None:
    with pytest.raises(AssertionError) as caught:
        wait_for("a thing", lambda: None, lambda: "the log tail", timeout=0.05, interval=0.01)
    assert "waiting for a thing" in str(caught.value) and "the log tail" in str(caught.value)


def test_a_written_image_links_its_blobs_manifest_and_tag_in_distributions_layout(
    tmp_path,
) -> None:
    image = make_image([b"layer"])
    digest = write_image(tmp_path, "group/app", "v1", image)

    assert digest == image.digest
    for blob in [*image.blobs, image.manifest]:
        hexdigest = sha256(blob).split(":")[1]
        data = tmp_path / V2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
        assert data.read_bytes() == blob
    repo = repository_dir(tmp_path, "group/app")
    links = {str(path.parent.relative_to(repo)): path.read_text() for path in repo.rglob("link")}
    hexdigest = digest.split(":")[1]
    assert links == {
        f"_layers/sha256/{sha256(image.config).split(':')[1]}": sha256(image.config),
        f"_layers/sha256/{sha256(b'layer').split(':')[1]}": sha256(b"layer"),
        f"_manifests/revisions/sha256/{hexdigest}": digest,
        "_manifests/tags/v1/current": digest,
        f"_manifests/tags/v1/index/sha256/{hexdigest}": digest,
    }


def test_a_blob_is_stored_once_and_only_sha256_digests_are_linked(tmp_path) -> None:
    assert write_blob(tmp_path, b"same") == write_blob(tmp_path, b"same")
    assert len(list((tmp_path / V2 / "blobs").rglob("data"))) == 1
    with pytest.raises(ValueError):  # the writer lays out sha256 digests, all the kit makes
        link_layer(tmp_path, "group/app", "sha512:" + "0" * 128)


def test_a_site_is_what_prepare_site_up_prints_last() -> None:
    printed = (
        "Loaded image: gdk-geo/registry:local\n"
        "DOCKER_HOST=unix:///run/gdkgeo-site21/docker.sock\n"
        "SITE_ADDRESS=198.18.21.2\n"
        "HOME_ADDRESS=198.18.0.1\n"
    )
    assert parse_up(21, printed) == Site(21, "unix:///run/gdkgeo-site21/docker.sock", "198.18.21.2")
    tcp = parse_up(12, printed + "DOCKER_TCP_HOST=tcp://198.18.12.2:2375\n")
    assert tcp.tcp_host == "tcp://198.18.12.2:2375"
