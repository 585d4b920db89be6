"""gdk.yml validation messages, through `config.load` (through `invoke`: tests/e2e).

Types, unknown keys, YAML syntax, data_dir, and the checks on primary_api_url (the seed's
key path, URLs that cannot reach the primary registry, after a promotion, named nodes).
The edits of geo.config.get/set are in test_config_edit.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from helpers import api_url_refusal, promoted_project, write_gdk_yml

from gdk_geo.errors import ConfigError
from gdk_geo.render import drift
from gdk_geo.settings import Settings, config, config_edit


def _error(tmp_path: Path, text: str) -> str:
    path = write_gdk_yml(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    return str(raised.value)


def test_type_error_names_key_line_given_and_expected(tmp_path: Path) -> None:
    message = _error(tmp_path, "hostname: localhost\ngeo:\n  primary:\n    port: abc\n")
    assert "gdk.yml:4: geo.primary.port: got 'abc' (a string)" in message
    assert "expected a TCP port number from 1 to 65535" in message


def test_port_out_of_range(tmp_path: Path) -> None:
    message = _error(tmp_path, "geo:\n  secondary:\n    registry:\n      port: 70000\n")
    assert "gdk.yml:4: geo.secondary.registry.port: got 70000" in message


def test_boolean_is_not_a_port(tmp_path: Path) -> None:
    message = _error(tmp_path, "geo:\n  primary:\n    port: true\n")
    assert "geo.primary.port: got True (a boolean)" in message


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    message = _error(tmp_path, "geo:\n  secondry:\n    port: 3002\n")
    assert "gdk.yml:2: geo.secondry: unknown key; did you mean `geo.secondary`?" in message


def test_unknown_top_level_key_suggests(tmp_path: Path) -> None:
    message = _error(tmp_path, "hostnme: gdk.test\n")
    assert "hostnme: unknown key; did you mean `hostname`?" in message


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        "registry:\n  notifications:\n    timeout: soon\n    threshold: 0\n  imagee: x\n",
    )
    assert "(3 problems)" in message
    assert "registry.notifications.timeout: got 'soon'" in message
    assert "registry.notifications.threshold: got 0 (a number), expected a whole number" in message
    assert "registry.imagee: unknown key; did you mean `registry.image`?" in message


def test_section_given_a_scalar(tmp_path: Path) -> None:
    message = _error(tmp_path, "geo: 5\n")
    assert "geo: got 5 (a number), expected a section of settings" in message


def test_yaml_syntax_error_shows_line_and_column(tmp_path: Path) -> None:
    message = _error(tmp_path, "geo:\n  primary:\n    port: [3001\n")
    assert "is not valid YAML" in message
    assert "line 4, column 1" in message


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    message = _error(tmp_path, "hostname: a\nhostname: b\n")
    assert "not valid YAML" in message and "line 2" in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "must be a mapping" in _error(tmp_path, "- a\n- b\n")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert config.load(write_gdk_yml(tmp_path, "")).geo.primary.port == 3001


def test_primary_api_url_is_derived_unless_set(tmp_path: Path) -> None:
    text = "hostname: gdk.test\ngeo:\n  primary:\n    registry:\n      port: 5100\n"
    path = write_gdk_yml(tmp_path, text)
    assert config_edit.get(path, "geo.secondary.registry_replication.primary_api_url") == (
        "https://gdk.test:5100"
    )
    config_edit.set_value(path, "geo.secondary.registry_replication.primary_api_url", "https://r:1")
    assert (
        config_edit.get(path, "geo.secondary.registry_replication.primary_api_url") == "https://r:1"
    )


# -- primary_api_url: the seed's key path, and URLs that cannot reach the primary registry ------

SEED_FORM = """\
geo:
  registry_replication:
    enabled: false
    primary_api_url: https://localhost:5000
"""


def test_the_seeds_key_path_is_the_secondarys_replication(tmp_path: Path) -> None:
    cfg = config.load(write_gdk_yml(tmp_path, SEED_FORM))
    replication = cfg.geo.secondary.registry_replication
    assert (replication.enabled, replication.primary_api_url) == (False, "https://localhost:5000")


def test_the_seeds_key_path_is_validated_like_the_secondarys(tmp_path: Path) -> None:
    message = _error(tmp_path, "geo:\n  registry_replication:\n    enabled: maybe\n")
    assert "gdk.yml:3: geo.registry_replication.enabled: got 'maybe' (a string)" in message


def test_both_key_paths_at_once_are_refused(tmp_path: Path) -> None:
    both = SEED_FORM + "  secondary:\n    registry_replication:\n      enabled: true\n"
    message = _error(tmp_path, both)
    assert "geo.registry_replication: also given as `geo.secondary.registry_replication`" in message


def test_set_and_get_keep_to_the_seeds_form(tmp_path: Path) -> None:
    path = write_gdk_yml(tmp_path, SEED_FORM)
    config_edit.set_value(path, "geo.secondary.registry_replication.enabled", "true")
    assert "  registry_replication:\n    enabled: true\n" in path.read_text()
    assert "secondary" not in path.read_text()
    assert config_edit.get(path, "geo.registry_replication.enabled") is True


def test_the_secondarys_own_registry_is_refused(tmp_path: Path) -> None:
    error = api_url_refusal(tmp_path, "https://localhost:5001")
    assert "gdk.yml:4: geo.secondary.registry_replication.primary_api_url" in error.what
    assert "is the secondary's own registry" in error.what
    assert error.fix.startswith(
        "`invoke geo.config.set geo.secondary.registry_replication.primary_api_url "
        "https://localhost:5000`"
    )


def test_plain_http_to_the_primary_registry_is_refused_with_https(tmp_path: Path) -> None:
    error = api_url_refusal(tmp_path, "http://localhost:5000")
    assert "uses http, but the primary registry serves only HTTPS" in error.what
    assert "primary_api_url https://localhost:5000`" in error.fix


API_URL = "geo.secondary.registry_replication.primary_api_url"


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [
        ("afile", "is a file, not a directory"),
        ("afile/below", "is a file, not a directory"),
        ("/dev/null", "a kernel file system"),
        ("/proc/gdk-geo", "a kernel file system"),
        ("/", "holds other files"),
        (".", "holds other files"),
        ("full", "holds other files"),
    ],
)
def test_unusable_data_dir_is_refused(tmp_path: Path, data_dir: str, expected: str) -> None:
    """Issue 13 #13 and #14: a file, /dev/null or /proc gave a traceback; `/` was used,
    writing primary/, secondary/ and secrets/ into the filesystem root. (Loaded, not
    reconfigured: before the fix, reconfiguring `/` would write there.)"""
    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "thesis.tex").write_text("someone else's\n")
    write_gdk_yml(tmp_path, f"data_dir: {data_dir}\n")
    with pytest.raises(ConfigError, match=expected) as raised:
        config.load(tmp_path / "gdk.yml")
    assert "gdk.yml:1: data_dir: " in raised.value.what


def test_data_dir_of_our_own_is_accepted(tmp_path: Path) -> None:
    """An empty directory, one gdk-geo already wrote to, and one not there yet are fine."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "used" / "secrets").mkdir(parents=True)
    (tmp_path / "used" / "rendered.json").write_text("{}\n")
    (tmp_path / "secrets-deleted").mkdir()  # a user removed secrets/ to regenerate them
    (tmp_path / "secrets-deleted" / "rendered.json").write_text("{}\n")
    for data_dir in ("empty", "used", "secrets-deleted", "new/nested", ".gdk-geo"):
        write_gdk_yml(tmp_path, f"data_dir: {data_dir}\n")
        assert config.load(tmp_path / "gdk.yml").data_dir == data_dir


# -- primary_api_url after a promotion: checked against the roles in force -------------------


def test_after_a_promotion_the_new_primary_registry_is_accepted(tmp_path: Path) -> None:
    cfg = promoted_project(tmp_path, "https://localhost:5001").load()
    assert cfg.primary_name == "secondary"
    assert cfg.primary_api_url_of("primary") == "https://localhost:5001"


def test_after_a_promotion_the_old_primarys_own_registry_is_refused(tmp_path: Path) -> None:
    project = promoted_project(tmp_path, "https://localhost:5000")
    with pytest.raises(ConfigError) as raised:
        project.load()
    assert "is the secondary's own registry (node primary)" in raised.value.what
    assert f"{API_URL} https://localhost:5001`" in raised.value.fix


def test_geo_check_follows_the_current_primary() -> None:
    """After a promotion the derived primary_api_url is the new primary's registry: the
    check that it reaches the primary registry must compare it with that one."""
    promoted = Settings().with_primary("secondary")
    assert promoted.primary_api_url == "https://localhost:5001"
    assert drift.api_url_problem(promoted) is None
    mirror = replace(
        promoted.geo.secondary.registry_replication, primary_api_url="https://localhost:5000"
    )
    wrong = replace(
        promoted,
        geo=replace(
            promoted.geo, secondary=replace(promoted.geo.secondary, registry_replication=mirror)
        ),
    )
    assert drift.api_url_problem(wrong) == (
        f"{API_URL} is 'https://localhost:5000': that is the registry of primary, a secondary; "
        "the primary registry is https://localhost:5001"
    )


# -- named nodes: get, set and the primary_api_url check speak of `geo.nodes.<name>` ---------

NAMED = "geo:\n  primary_node: dc2\n  nodes:\n" + "".join(
    f"    dc{n}:\n      port: {4100 + n}\n      registry:\n        port: {4200 + n}\n"
    for n in (1, 2, 3)
)


def test_get_and_set_reach_a_named_node(tmp_path: Path) -> None:
    path = write_gdk_yml(tmp_path, NAMED)
    assert config_edit.get(path, "geo.nodes.dc2.port") == 4102
    key = "geo.nodes.dc1.registry_replication.primary_api_url"
    assert config_edit.get(path, key) == "https://localhost:4202"
    config_edit.set_value(path, "geo.nodes.dc3.port", "4113")
    assert "    dc3:\n      port: 4113\n" in path.read_text()
    assert config_edit.get(path, "geo.nodes.dc3.port") == 4113
    with pytest.raises(ConfigError) as shared:
        config_edit.set_value(path, "geo.nodes.dc3.port", "4101")
    assert "port 4101 is already geo.nodes.dc1.port's" in shared.value.what


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("geo.nodes.dc9.port", "gdk.yml has no node 'dc9' under geo.nodes"),
        ("geo.primary.port", "this gdk.yml declares its nodes under geo.nodes"),
    ],
)
def test_a_key_of_the_other_form_is_named(tmp_path: Path, key: str, message: str) -> None:
    path = write_gdk_yml(tmp_path, NAMED)
    with pytest.raises(ConfigError) as raised:
        config_edit.get(path, key)
    assert message in raised.value.what


def test_a_named_secondary_syncing_from_itself_is_refused(tmp_path: Path) -> None:
    own = NAMED + "      registry_replication:\n        primary_api_url: https://127.0.0.1:4203\n"
    with pytest.raises(ConfigError) as raised:
        config.load(write_gdk_yml(tmp_path, own))
    key = "geo.nodes.dc3.registry_replication.primary_api_url"
    assert f"gdk.yml:17: {key}: 'https://127.0.0.1:4203' is the secondary's own registry" in (
        raised.value.what
    )
    assert raised.value.fix.startswith(f"`invoke geo.config.set {key} https://localhost:4202`")


def test_a_section_given_in_part_keeps_its_own_defaults(tmp_path: Path) -> None:
    """Both registries are one section type; the secondary's default port is its own."""
    cfg = config.load(write_gdk_yml(tmp_path, "geo:\n  secondary:\n    registry: {}\n"))
    assert (cfg.geo.primary.registry.port, cfg.geo.secondary.registry.port) == (5000, 5001)
