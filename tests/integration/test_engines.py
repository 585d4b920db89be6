"""Each node's engine: an engine that does not answer is a clear error naming the node and
its `docker.host`; TLS to a tcp:// engine is built from the node's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_gdk_yml

from gdk_geo.errors import GdkGeoError
from gdk_geo.runtime import engines
from gdk_geo.settings import config
from gdk_geo.settings.topology import Engine


def test_an_engine_that_does_not_answer_names_the_node_and_its_key(tmp_path: Path) -> None:
    text = (
        "geo:\n  secondary:\n    address: 198.18.1.2\n"
        f"    docker:\n      host: unix://{tmp_path}/nothing.sock\n"
    )
    cfg = config.load(write_gdk_yml(tmp_path, text))

    with pytest.raises(GdkGeoError) as raised:
        engines.Engines(cfg).of("secondary")

    error = raised.value
    assert error.what.startswith("the Docker engine of node secondary (unix://")
    assert error.where == "gdk.yml: geo.secondary.docker.host"
    assert "invoke geo.config.set geo.secondary.docker.host" in error.fix


def test_tls_to_a_tcp_engine_uses_the_node_s_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("")
    engine = Engine("tcp://198.18.1.2:2376", tls_verify=True, cert_path=str(tmp_path))

    tls = engines._tls_config(engine)

    assert tls is not None and tls.verify is True and tls.ca_cert == str(tmp_path / "ca.pem")
    assert tls.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert engines._tls_config(Engine("tcp://198.18.1.2:2375")) is None
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    assert engines._tls_config(Engine("tcp://198.18.1.2:2376")) is not None
