"""The settings declaration and the documents derived from it."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdk_geo import settings
from gdk_geo.project import EXAMPLE, REPO_ROOT
from gdk_geo.settings import settings_docs, topology
from gdk_geo.settings import values as setting_checks
from gdk_geo.settings.declared import declared as every_setting


def test_defaults_are_the_documented_ones() -> None:
    cfg = settings.Settings()
    assert cfg.hostname == "localhost"
    assert cfg.registry.image == "registry:2"
    assert cfg.registry.notification_secret == ""
    notifications = cfg.registry.notifications
    assert (notifications.timeout, notifications.threshold, notifications.backoff) == (
        "500ms",
        5,
        "1s",
    )
    assert cfg.geo.primary.port == 3001
    assert cfg.geo.primary.registry.port == 5000
    assert cfg.geo.secondary.port == 3002
    assert cfg.geo.secondary.registry.port == 5001
    assert cfg.geo.secondary.registry_replication.enabled is True
    assert cfg.geo.secondary.registry_replication.primary_api_url == ""
    assert cfg.geo.secondary.registry_replication.backfill_interval == "60s"


def test_every_setting_has_a_one_line_doc() -> None:
    for declared in every_setting():
        assert declared.doc and "\n" not in declared.doc, declared.key


def test_every_default_passes_its_own_check() -> None:
    for declared in every_setting():
        if declared.check:
            assert declared.check(declared.default) is None, declared.key


def test_committed_example_is_current() -> None:
    assert EXAMPLE.read_text() == settings_docs.example_yaml(), (
        "gdk.example.yml is stale: run `invoke geo.config.example`"
    )


def test_settings_page_table_is_current() -> None:
    page = (REPO_ROOT / settings_docs.PAGE).read_text()
    assert settings_docs.page_with_table(page) == page, (
        f"{settings_docs.PAGE}'s settings table is stale: run `invoke geo.config.example`"
    )


def test_example_loads_to_the_defaults(tmp_path) -> None:
    from gdk_geo.settings import config

    path = tmp_path / "gdk.yml"
    path.write_text(settings_docs.example_yaml())
    assert config.load(path) == settings.Settings()


def test_durations() -> None:
    assert setting_checks.duration_seconds("500ms") == 0.5
    assert setting_checks.duration_seconds("1m30s") == 90
    assert setting_checks.duration("0s") is not None
    assert setting_checks.duration("fast") is not None


NAME_RULES = "1 to 41 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"


def test_a_container_prefix_is_told_every_rule_it_must_meet() -> None:
    """Issue 25 #14: the message said "lowercase letters, digits, '.', '_' or '-'" and left
    out what the check also enforces: the first character, and at most 41 characters."""
    assert setting_checks.container_prefix("a" * 41) is None
    assert setting_checks.container_prefix("0gdk-geo.dev_1") is None
    for refused in ("-gdk", ".gdk", "_gdk", "Gdk", "gdk geo", "", "a" * 42):
        expected = setting_checks.container_prefix(refused)
        assert expected is not None, refused
        assert expected.startswith(NAME_RULES), expected
        assert "such as gdk-geo" in expected and "<prefix>-<node>-registry" in expected


def test_a_node_name_is_told_the_same_rules(tmp_path) -> None:
    from gdk_geo.errors import ConfigError
    from gdk_geo.settings import config

    path = tmp_path / "gdk.yml"
    path.write_text("geo:\n  nodes:\n    DC1: {port: 4101}\n    dc2: {port: 4102}\n")
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    assert f"geo.nodes.DC1: expected a node name ({NAME_RULES}), such as dc2" in raised.value.what


def _custom() -> settings.Settings:
    geo = settings.Geo(
        primary=settings.Primary(port=4001, registry=settings.NodeRegistry(port=6000)),
        secondary=settings.Secondary(port=4002, registry=settings.NodeRegistry(port=6001)),
    )
    return settings.Settings(hostname="gdk.test", geo=geo)


def test_node_urls_follow_the_hostname_and_ports() -> None:
    primary, secondary = _custom().nodes
    assert (primary.name, primary.is_primary, secondary.is_primary) == ("primary", True, False)
    assert primary.registry_url == "https://gdk.test:6000"
    assert primary.registry_address == "gdk.test:6000"
    assert primary.service_url == "http://gdk.test:4001"
    assert primary.notification_url == (
        "http://host.docker.internal:4001/api/v4/container_registry_event/events"
    )
    assert secondary.registry_url == "https://gdk.test:6001"
    assert secondary.service_url == "http://gdk.test:4002"


def test_there_are_two_nodes_and_no_other() -> None:
    try:
        settings.Settings().node("tertiary")
    except ValueError as exc:
        assert "primary, secondary" in str(exc)
    else:
        raise AssertionError("an unknown node name was accepted")


def test_listeners_are_every_port_setting_by_key() -> None:
    cfg = _custom()
    assert cfg.listeners == {
        "geo.primary.port": 4001,
        "geo.primary.registry.port": 6000,
        "geo.secondary.port": 4002,
        "geo.secondary.registry.port": 6001,
    }
    port_settings = {d.key for d in every_setting() if d.check is setting_checks.port}
    assert set(cfg.listeners) == port_settings


def test_primary_api_url_is_the_primary_registry_unless_set() -> None:
    cfg = _custom()
    assert cfg.primary_api_url == cfg.node("primary").registry_url
    replication = settings.RegistryReplication(primary_api_url="https://mirror.test:7000/")
    secondary = settings.Secondary(registry_replication=replication)
    configured = settings.Settings(geo=settings.Geo(secondary=secondary))
    assert configured.primary_api_url == "https://mirror.test:7000"


def test_effective_values_are_the_settings_but_for_derived_ones() -> None:
    cfg = _custom()
    derived = {d.key for d in every_setting() if d.effective is not None}
    assert derived == {"geo.secondary.registry_replication.primary_api_url"}
    for declared in every_setting():
        value = declared.value_in(cfg)
        if declared.key in derived:
            assert value == "https://gdk.test:6000", declared.key
        else:
            assert value == reduce(getattr, declared.key.split("."), cfg), declared.key


def test_urls_are_built_only_beside_the_settings() -> None:
    """A node URL put together anywhere else drifts from this one (it did, five times)."""
    cli = [p for p in (REPO_ROOT / "gdk_geo").glob("*.py") if p.name != "topology.py"]
    templates = list((REPO_ROOT / "templates").rglob("*.j2"))
    built = re.compile(r"https?://(\{|\[?\{\{)")  # f"https://{host}..." or https://{{ hostname
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for path in cli + templates
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if built.search(line)
    ]
    assert offenders == [], "build node URLs from topology.Node / Settings instead"


def test_an_ipv6_listener_is_written_in_brackets() -> None:
    assert topology.url("http", "::1", 3001) == "http://[::1]:3001"
    assert topology.url("https", "127.0.0.1", 5000) == "https://127.0.0.1:5000"


OLD_IMAGE = re.compile(r"^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*$")  # before it was made linear


def test_an_image_reference_is_checked_at_once() -> None:
    """Next door to issue 25 #11: the image check's regex backtracked exponentially, each
    dash taking 1.65 times as long: `registry.image: a-…-!` took 1.4 s with 36 dashes, and
    would take days with 60. Run apart, so that a regression fails after 60 s instead of
    hanging the suite."""
    code = "from gdk_geo.settings.values import image_name; print(image_name('a' + '-' * 60 + '!'))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert result.stdout.strip() == "an image reference such as registry:2", result.stderr


@given(st.text(alphabet="aZ0._-/:@!", max_size=14))
def test_the_image_check_accepts_what_it_did(reference: str) -> None:
    assert (setting_checks.image_name(reference) is None) == bool(OLD_IMAGE.match(reference))
