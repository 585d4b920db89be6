"""How shaped links route: the URLs the templates render, and each relay's routes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_gdk_yml

from gdk_geo.errors import GdkGeoError
from gdk_geo.project import links
from gdk_geo.settings import config

THREE = """\
geo:
  nodes:
    dc1: {port: 3001, registry: {port: 5000}}
    dc2: {port: 3002, registry: {port: 5001}}
    dc3: {port: 3003, registry: {port: 5002}}
"""


def _shaped(cfg, *nodes: str) -> links.Links:
    recorded = links.Links()
    for number, node in enumerate(nodes):
        base = 40000 + 100 * number
        ports = {key: base + i for i, key in enumerate(links.route_keys(cfg, node))}
        recorded = links.Links({**recorded.nodes, node: links.NodeLink({}, ports)})
    return recorded


def test_a_plain_link_is_the_direct_url(tmp_path: Path) -> None:
    cfg = config.load(write_gdk_yml(tmp_path, THREE))

    assert links.reach(cfg, links.Links(), "dc2", "dc1", "registry") == "https://localhost:5000"
    assert links.reach(cfg, links.Links(), "dc2", "dc1", "service") == "http://localhost:3001"


def test_a_shaped_secondary_goes_out_through_its_relay(tmp_path: Path) -> None:
    cfg = config.load(write_gdk_yml(tmp_path, THREE))
    shaped = _shaped(cfg, "dc2")
    out = shaped.nodes["dc2"].ports["dc1:registry"]

    assert links.reach(cfg, shaped, "dc2", "dc1", "registry") == f"https://127.0.0.1:{out}"
    assert links.reach(cfg, shaped, "dc3", "dc1", "registry") == "https://localhost:5000"
    assert ((("127.0.0.1", out), ("127.0.0.1", 5000))) in links.routes(cfg, shaped, "dc2")


def test_a_shaped_primary_is_entered_through_its_relay_by_every_secondary(tmp_path: Path) -> None:
    cfg = config.load(write_gdk_yml(tmp_path, THREE))
    shaped = _shaped(cfg, "dc1")
    inbound = shaped.nodes["dc1"].ports["in:service"]

    for secondary in ("dc2", "dc3"):
        assert links.reach(cfg, shaped, secondary, "dc1", "service") == (
            f"http://127.0.0.1:{inbound}"
        )


def test_two_shaped_nodes_chain_their_relays(tmp_path: Path) -> None:
    cfg = config.load(write_gdk_yml(tmp_path, THREE))
    shaped = _shaped(cfg, "dc1", "dc2")
    into_dc1 = ("127.0.0.1", shaped.nodes["dc1"].ports["in:registry"])
    out_of_dc2 = ("127.0.0.1", shaped.nodes["dc2"].ports["dc1:registry"])

    assert (out_of_dc2, into_dc1) in links.routes(cfg, shaped, "dc2")
    assert (
        links.reach(cfg, shaped, "dc2", "dc1", "registry") == f"https://127.0.0.1:{out_of_dc2[1]}"
    )


def test_sites_relay_at_the_address_the_sites_reach_this_machine_at(tmp_path: Path) -> None:
    text = THREE.replace(
        "dc1: {port: 3001, registry: {port: 5000}}",
        "dc1: {port: 3001, registry: {port: 5000}, address: 198.18.0.1}",
    ).replace(
        "dc2: {port: 3002, registry: {port: 5001}}",
        "dc2: {port: 3002, registry: {port: 5001}, address: 198.18.1.2, "
        'docker: {host: "tcp://198.18.1.2:2375"}}',
    )
    cfg = config.load(write_gdk_yml(tmp_path, text))

    assert links.relay_host(cfg) == "198.18.0.1"
    assert links.endpoint(cfg, "dc2", "registry") == ("198.18.1.2", 5001)


def test_sites_without_an_address_here_cannot_be_relayed(tmp_path: Path) -> None:
    text = THREE.replace(
        "dc2: {port: 3002, registry: {port: 5001}}",
        "dc2: {port: 3002, registry: {port: 5001}, address: 198.18.1.2, "
        'docker: {host: "tcp://198.18.1.2:2375"}}',
    )
    cfg = config.load(write_gdk_yml(tmp_path, text))

    with pytest.raises(GdkGeoError, match="no node here has an address"):
        links.relay_host(cfg)


def test_the_record_round_trips_and_an_empty_one_is_no_file(tmp_path: Path) -> None:
    recorded = links.Links({"dc2": links.NodeLink({"latency_ms": 80}, {"in:registry": 40001})})
    links.write(tmp_path, recorded)
    assert links.read(tmp_path) == recorded

    links.write(tmp_path, links.Links())
    assert not links.path(tmp_path).exists()
