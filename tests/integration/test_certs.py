"""certs: the local CA and the server pair in real TLS handshakes over loopback.

A server thread serves a node root's pair as its registry does; a strict client trusting
only the CA (or the secondary's copy as a bundle) completes the handshake, by name and by
address, and a client trusting another CA is refused. What is written, reused and renewed
is tests/unit/pki/test_certs.py.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from pki_kit import Layout, handshake, tls_server


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout.under(tmp_path)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
def test_handshake_trusting_only_the_ca(layout: Layout, address: str) -> None:
    if address == "::1" and not ipv6_loopback():
        pytest.skip("IPv6 loopback (::1) is not available on this machine")
    layout.ensure()
    with tls_server(layout.primary, address) as port:
        assert handshake(address, port, layout.ca_crt) == b"hello"
        # The IP SAN verifies too, for clients that dial the address rather than the name.
        assert handshake(address, port, layout.ca_crt, server_hostname=address) == b"hello"


def test_handshake_trusting_the_secondary_copy_as_bundle(layout: Layout) -> None:
    layout.ensure()
    with tls_server(layout.secondary, "127.0.0.1") as port:
        assert handshake("127.0.0.1", port, layout.secondary / "registry_host.crt") == b"hello"


def test_handshake_fails_for_a_client_trusting_another_ca(layout: Layout, tmp_path: Path) -> None:
    layout.ensure()
    other = Layout(tmp_path / "other-data", tmp_path / "other-p", tmp_path / "other-s")
    other.ensure()
    with (
        tls_server(layout.primary, "127.0.0.1") as port,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        handshake("127.0.0.1", port, other.ca_crt)


def test_handshake_with_a_custom_hostname(layout: Layout) -> None:
    layout.ensure("geo.test")
    with tls_server(layout.primary, "127.0.0.1") as port:
        assert handshake("127.0.0.1", port, layout.ca_crt, server_hostname="geo.test") == b"hello"
        assert handshake("127.0.0.1", port, layout.ca_crt, server_hostname="localhost") == b"hello"
