"""Each node's engine: an engine that does not answer is a clear error naming the node and
its `docker.host`, within the first ping's time over ssh:// too; TLS to a tcp:// engine is
built from the node's settings; an ssh connection whose ssh has exited closes quietly.
(An engine really reached over ssh:// is tests/e2e/test_ssh_engine.py's.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
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


def test_an_ssh_engine_that_never_answers_is_an_error_within_the_first_ping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An `ssh` that connects nowhere and never exits: a host that drops every packet.
    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(120)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(engines, "PING_TIMEOUT", 2)
    text = (
        "geo:\n  secondary:\n    address: 198.18.1.2\n"
        "    docker:\n      host: ssh://root@198.18.1.2:2222\n"
    )
    cfg = config.load(write_gdk_yml(tmp_path, text))

    started = time.monotonic()
    with pytest.raises(GdkGeoError) as raised:
        engines.Engines(cfg).of("secondary")

    assert time.monotonic() - started < 8
    assert "ssh://root@198.18.1.2:2222) does not answer: no answer through ssh in 2 s" in (
        raised.value.what
    )
    assert raised.value.where == "gdk.yml: geo.secondary.docker.host"
    time.sleep(0.5)  # the ended ssh is reaped
    left = [
        child.cmdline()
        for child in psutil.Process().children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE and str(fake) in child.cmdline()
    ]
    assert left == []


def test_closing_an_ssh_connection_whose_ssh_has_exited_is_quiet() -> None:
    from docker.transport import sshconn

    engines.quiet_ssh_close()
    engines.quiet_ssh_close()  # idempotent
    connection = sshconn.SSHSocket("root@198.18.1.2:2222")
    connection.proc = subprocess.Popen(
        ["true"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )  # an ssh that has exited: the engine closed first
    connection.proc.wait()

    connection.close()  # docker-py's own close raised BrokenPipeError here

    assert connection.proc.stdin.closed
    connection.close()
