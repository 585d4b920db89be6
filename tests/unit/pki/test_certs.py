"""certs: the local CA and the server pair on disk (in TLS handshakes: tests/integration)."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from pki_kit import Layout

from gdk_geo.errors import GdkGeoError
from gdk_geo.pki.certs import certificate_info, fingerprint


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout.under(tmp_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def mtimes(paths: list[Path]) -> list[int]:
    return [path.stat().st_mtime_ns for path in paths]


def load_chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


# --- what gets written ---------------------------------------------------------------------


def test_first_run_creates_everything_with_private_keys_0600(layout: Layout) -> None:
    report = layout.ensure()

    assert (report.action, report.ca_action, report.copied) == ("created", "created", True)
    for key in (
        layout.ca_key,
        layout.primary / "registry_host.key",
        layout.secondary / "registry_host.key",
    ):
        assert mode(key) == 0o600, key
    for cert in (
        layout.ca_crt,
        layout.primary / "registry_host.crt",
        layout.secondary / "registry_host.crt",
    ):
        assert mode(cert) == 0o644, cert
    for name in ("registry_host.crt", "registry_host.key"):
        assert (layout.secondary / name).read_bytes() == (layout.primary / name).read_bytes()
    assert report.fingerprint == fingerprint(layout.secondary / "registry_host.crt")


def test_ca_is_a_ten_year_signing_ca(layout: Layout) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    layout.ensure(now=now)
    ca = load_chain(layout.ca_crt)[0]

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert timedelta(days=3640) < ca.not_valid_after_utc - now < timedelta(days=3660)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)


def test_leaf_is_a_full_chain_for_server_auth(layout: Layout) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    report = layout.ensure("geo.test", now=now)
    leaf, ca = load_chain(layout.primary / "registry_host.crt")

    assert ca == load_chain(layout.ca_crt)[0]
    leaf.verify_directly_issued_by(ca)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert timedelta(days=360) < leaf.not_valid_after_utc - now < timedelta(days=398)
    assert report.not_after == leaf.not_valid_after_utc

    info = certificate_info(layout.primary / "registry_host.crt")
    assert info.sans == ("DNS:geo.test", "DNS:localhost", "IP:127.0.0.1", "IP:::1")
    assert info.subject == "CN=geo.test"
    assert info.fingerprint == report.fingerprint


def test_localhost_sans_are_not_duplicated(layout: Layout) -> None:
    layout.ensure("localhost")
    info = certificate_info(layout.primary / "registry_host.crt")
    assert info.sans == ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


def test_fingerprint_is_sha256_of_the_leaf_der(layout: Layout) -> None:
    layout.ensure()
    leaf = load_chain(layout.primary / "registry_host.crt")[0]
    digest = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert fingerprint(layout.primary / "registry_host.crt").replace(":", "").lower() == digest


# --- reuse and renewal ---------------------------------------------------------------------


def test_second_run_reuses_everything_untouched(layout: Layout) -> None:
    first = layout.ensure()
    before = mtimes(layout.files())

    second = layout.ensure()

    assert (second.action, second.ca_action, second.copied) == ("reused", "reused", False)
    assert second.fingerprint == first.fingerprint
    assert mtimes(layout.files()) == before


def test_reused_until_thirty_days_before_expiry(layout: Layout) -> None:
    first = layout.ensure()
    assert layout.ensure(now=first.not_after - timedelta(days=31)).action == "reused"


def test_renewed_within_thirty_days_of_expiry(layout: Layout) -> None:
    first = layout.ensure()

    later = layout.ensure(now=first.not_after - timedelta(days=29))

    assert later.action.startswith("renewed: expires")
    assert "within 30 days" in later.action
    assert later.ca_action == "reused"
    assert later.fingerprint != first.fingerprint
    assert later.not_after > first.not_after
    assert later.copied
    assert fingerprint(layout.secondary / "registry_host.crt") == later.fingerprint


def test_hostname_change_issues_a_new_certificate(layout: Layout) -> None:
    first = layout.ensure("localhost")

    changed = layout.ensure("geo.test")

    assert changed.action.startswith("renewed: the hostname changed")
    assert changed.fingerprint != first.fingerprint
    assert "DNS:geo.test" in certificate_info(layout.secondary / "registry_host.crt").sans


def test_key_that_does_not_match_is_renewed(layout: Layout) -> None:
    layout.ensure()
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (layout.primary / "registry_host.key").write_bytes(stranger)

    report = layout.ensure()

    assert report.action == "renewed: registry_host.key does not match registry_host.crt"
    assert report.copied


def test_missing_ca_regenerates_ca_and_leaf(layout: Layout) -> None:
    first = layout.ensure()
    layout.ca_crt.unlink()
    layout.ca_key.unlink()

    report = layout.ensure()

    assert report.ca_action == "created"
    assert report.action == "renewed: the CA changed"
    assert report.fingerprint != first.fingerprint
    assert load_chain(layout.primary / "registry_host.crt")[1] == load_chain(layout.ca_crt)[0]


def test_tampered_secondary_copy_is_copied_again(layout: Layout) -> None:
    layout.ensure()
    copy = layout.secondary / "registry_host.crt"
    copy.write_bytes(copy.read_bytes() + b"# edited by hand\n")
    (layout.secondary / "registry_host.key").chmod(0o644)

    report = layout.ensure()

    assert (report.action, report.copied) == ("reused", True)
    assert copy.read_bytes() == (layout.primary / "registry_host.crt").read_bytes()
    assert mode(layout.secondary / "registry_host.key") == 0o600


# --- errors --------------------------------------------------------------------------------


def test_corrupt_key_is_a_clear_error(layout: Layout) -> None:
    layout.ensure()
    key = layout.primary / "registry_host.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")

    with pytest.raises(GdkGeoError) as caught:
        layout.ensure()

    message = str(caught.value)
    assert "registry_host.key" in message
    assert str(key) in caught.value.where
    assert "invoke geo.reconfigure" in caught.value.fix
    assert "delete" in caught.value.fix


def test_corrupt_certificate_is_a_clear_error(layout: Layout) -> None:
    layout.ensure()
    cert = layout.primary / "registry_host.crt"
    cert.write_text("garbage")

    with pytest.raises(GdkGeoError) as caught:
        certificate_info(cert)

    assert "registry_host.crt" in caught.value.what
    assert caught.value.where == str(cert)
    assert "invoke geo.reconfigure" in caught.value.fix


def test_missing_certificate_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(GdkGeoError, match="does not exist") as caught:
        fingerprint(tmp_path / "registry_host.crt")
    assert "invoke geo.reconfigure" in caught.value.fix


def test_hostname_with_spaces_is_rejected(layout: Layout) -> None:
    with pytest.raises(GdkGeoError, match="cannot go into a certificate"):
        layout.ensure("geo test")
