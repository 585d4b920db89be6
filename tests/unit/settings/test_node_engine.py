"""A node on an engine of its own: `docker.host`, its TLS settings, and `address`, in both
forms of gdk.yml, and the URLs and listeners derived from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_gdk_yml

from gdk_geo.errors import ConfigError
from gdk_geo.settings import config

SITES = """\
geo:
  nodes:
    primary:
      port: 3101
      registry: {port: 5100}
      address: 198.18.0.1
    secondary:
      port: 3102
      registry: {port: 5101}
      address: 198.18.1.2
      docker: {host: "unix:///run/gdkgeo-site1/docker.sock"}
    dc3:
      port: 3103
      registry: {port: 5102}
      address: 198.18.2.2
      docker: {host: "tcp://198.18.2.2:2375", tls_verify: true, cert_path: /etc/site2}
"""


def test_each_node_is_reached_at_its_address_and_binds_it(tmp_path: Path) -> None:
    cfg = config.load(write_gdk_yml(tmp_path, SITES))

    secondary, dc3 = cfg.node("secondary"), cfg.node("dc3")
    assert secondary.registry_url == "https://198.18.1.2:5101"
    assert secondary.registry_address == "198.18.1.2:5101"
    assert secondary.service_url == "http://198.18.1.2:3102"
    assert secondary.realm_url == "http://198.18.1.2:3102/jwt/auth"
    assert secondary.listen_address == "198.18.1.2"
    assert secondary.engine.is_remote and secondary.engine.host.startswith("unix://")
    assert (dc3.engine.tls_verify, dc3.engine.cert_path) == (True, "/etc/site2")
    primary = cfg.primary
    assert not primary.engine.is_remote
    assert primary.listen_address == "198.18.0.1"
    assert cfg.primary_api_url_of("dc3") == "https://198.18.0.1:5100"
    # Only the local engine's listeners are this machine's to check.
    assert set(cfg.local_listeners) == {"geo.nodes.primary.port", "geo.nodes.primary.registry.port"}
    assert cfg.aim_of("https://198.18.1.2:5101").node == secondary


def test_a_node_without_an_address_keeps_hostname_and_listen_address(tmp_path: Path) -> None:
    cfg = config.load(write_gdk_yml(tmp_path, "hostname: gdk.test\n"))

    assert cfg.primary.registry_url == "https://gdk.test:5000"
    assert cfg.primary.listen_address == "127.0.0.1"
    assert not cfg.primary.engine.is_remote


def test_an_address_by_name_binds_every_address(tmp_path: Path) -> None:
    cfg = config.load(write_gdk_yml(tmp_path, "geo:\n  secondary:\n    address: site1.gdk.test\n"))

    assert cfg.node("secondary").registry_url == "https://site1.gdk.test:5001"
    assert cfg.node("secondary").listen_address == "0.0.0.0"


@pytest.mark.parametrize("form", ["geo.secondary", "geo.nodes.dc2"])
def test_an_engine_of_its_own_requires_an_address(tmp_path: Path, form: str) -> None:
    if form == "geo.secondary":
        text = "geo:\n  secondary:\n    docker:\n      host: tcp://198.18.1.2:2375\n"
    else:
        text = (
            "geo:\n  nodes:\n    dc1: {port: 3001, registry: {port: 5000}}\n"
            "    dc2:\n      port: 3002\n      registry: {port: 5001}\n"
            "      docker:\n        host: tcp://198.18.1.2:2375\n"
        )
    with pytest.raises(ConfigError) as raised:
        config.load(write_gdk_yml(tmp_path, text))

    message = str(raised.value)
    assert f"{form}.docker.host: is set, so `{form}.address` is required" in message
    assert "such as 198.18.1.2" in message


@pytest.mark.parametrize("host", ["198.18.1.2:2375", "http://x:1", "tcp://host", "unix://rel"])
def test_an_engine_not_spelled_as_docker_host_is_refused(tmp_path: Path, host: str) -> None:
    text = f"geo:\n  secondary:\n    address: 198.18.1.2\n    docker:\n      host: {host}\n"
    with pytest.raises(ConfigError) as raised:
        config.load(write_gdk_yml(tmp_path, text))

    assert "geo.secondary.docker.host" in str(raised.value)
    assert "as DOCKER_HOST spells it" in str(raised.value)
