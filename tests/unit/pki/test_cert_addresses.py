"""certs: the nodes' addresses in the server certificate (`ensure_certificates(addresses=)`).

Each address is a SAN of its kind (an IP SAN for an IP address, a DNS SAN for a name),
the certificate is issued again when the set of names changes and only then, and a strict
TLS client dialling a node by its IP address verifies it.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from pki_kit import Layout, handshake, tls_server

from gdk_geo.errors import GdkGeoError

NODE_ADDRESS = "198.18.1.2"  # a node's address; only named in the certificate, never dialled


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout.under(tmp_path)


def sans(layout: Layout) -> x509.SubjectAlternativeName:
    leaf = x509.load_pem_x509_certificates((layout.primary / "registry_host.crt").read_bytes())[0]
    return leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_an_ip_address_is_an_ip_san(layout: Layout) -> None:
    layout.ensure(addresses=[NODE_ADDRESS, "2001:db8::7"])
    names = sans(layout)
    ips = names.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address(NODE_ADDRESS) in ips
    assert ipaddress.ip_address("2001:db8::7") in ips
    assert NODE_ADDRESS not in names.get_values_for_type(x509.DNSName), "never as a DNS name"


def test_a_name_is_a_dns_san(layout: Layout) -> None:
    layout.ensure(addresses=["secondary.geo.test"])
    names = sans(layout)
    assert "secondary.geo.test" in names.get_values_for_type(x509.DNSName)
    assert len(names.get_values_for_type(x509.IPAddress)) == 2  # 127.0.0.1 and ::1 only


def test_no_addresses_names_what_it_always_did(layout: Layout) -> None:
    layout.ensure()
    names = sans(layout)
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


def test_a_changed_set_of_addresses_issues_a_new_certificate(layout: Layout) -> None:
    first = layout.ensure(addresses=[NODE_ADDRESS])

    added = layout.ensure(addresses=[NODE_ADDRESS, "198.18.2.2"])
    assert added.action.startswith("renewed: the addresses changed"), added.action
    assert added.fingerprint != first.fingerprint
    assert added.copied, "every node gets the new pair"
    ips = sans(layout).get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("198.18.2.2") in ips

    removed = layout.ensure()
    assert removed.action.startswith("renewed: the addresses changed"), removed.action
    assert ipaddress.ip_address(NODE_ADDRESS) not in sans(layout).get_values_for_type(
        x509.IPAddress
    )


def test_the_same_set_is_reused_in_any_order(layout: Layout) -> None:
    first = layout.ensure(addresses=[NODE_ADDRESS, "secondary.geo.test"])
    again = layout.ensure(addresses=["secondary.geo.test", NODE_ADDRESS, NODE_ADDRESS])
    assert again.action == "reused"
    assert again.fingerprint == first.fingerprint
    # An address the certificate names anyway (127.0.0.1) changes nothing either.
    assert layout.ensure(addresses=[NODE_ADDRESS, "secondary.geo.test", "127.0.0.1"]).action == (
        "reused"
    )


def test_an_address_that_cannot_be_named_is_refused(layout: Layout) -> None:
    with pytest.raises(GdkGeoError, match="node address"):
        layout.ensure(addresses=["bad name"])
    with pytest.raises(TypeError):
        layout.ensure(addresses=NODE_ADDRESS)  # type: ignore[arg-type]  # one string


# --- a real handshake ---------------------------------------------------------------------


def test_a_client_dialling_the_nodes_ip_address_verifies_the_certificate(layout: Layout) -> None:
    layout.ensure(addresses=[NODE_ADDRESS])
    with tls_server(layout.secondary, "127.0.0.1") as port:
        assert handshake("127.0.0.1", port, layout.ca_crt, NODE_ADDRESS) == b"hello"
        with pytest.raises(ssl.SSLCertVerificationError, match=re.escape("198.18.1.3")):
            handshake("127.0.0.1", port, layout.ca_crt, "198.18.1.3")  # an address it does not name


def test_without_the_address_the_same_client_is_refused(layout: Layout) -> None:
    layout.ensure()
    with tls_server(layout.primary, "127.0.0.1") as port:
        assert handshake("127.0.0.1", port, layout.ca_crt, "localhost") == b"hello"
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake("127.0.0.1", port, layout.ca_crt, NODE_ADDRESS)
