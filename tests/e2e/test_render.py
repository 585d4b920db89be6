"""`invoke geo.reconfigure` on a scratch project (no Docker): its output and its refusals.

No secret is ever printed; a port held by another process, or given twice, is a clear error
before anything is written. The rendering itself, in process, is
tests/unit/render/test_render.py.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from helpers import FIXED_SECRETS, invoke, ports_yml, seed_secrets, write_gdk_yml

from testkit.net import free_ports


def test_cli_reconfigure_creates_gdk_yml_and_never_prints_secrets(tmp_path: Path) -> None:
    seed_secrets(tmp_path)
    write_gdk_yml(tmp_path, ports_yml(*(free_ports(4))))
    (tmp_path / "gdk.yml").unlink()  # reconfigure copies the example when gdk.yml is absent
    result = invoke(tmp_path, "geo.reconfigure")
    # The example uses the default ports, which may be taken on this machine; either way
    # the example was copied and nothing secret was printed.
    assert (tmp_path / "gdk.yml").exists()
    for secret in FIXED_SECRETS.values():
        assert secret not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    ports = free_ports(4)
    write_gdk_yml(tmp_path, ports_yml(*ports))
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", ports[1]))
        holder.listen()
        result = invoke(tmp_path, "geo.reconfigure")
    assert result.returncode == 1
    assert "geo.primary.registry.port" in result.stderr and str(ports[1]) in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".gdk-geo").exists()


def test_duplicate_ports_name_both_keys(tmp_path: Path) -> None:
    ports = free_ports(3)
    write_gdk_yml(tmp_path, ports_yml(ports[0], ports[1], ports[2], ports[1]))
    result = invoke(tmp_path, "geo.reconfigure")
    assert result.returncode == 1
    assert "geo.primary.registry.port" in result.stderr
    assert "geo.secondary.registry.port" in result.stderr
