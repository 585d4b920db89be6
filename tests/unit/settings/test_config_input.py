"""gdk.yml and values of any size: refused at once, echoed only as a prefix.

A valid gdk.yml padded with comments to 50 MB once printed nothing for 300 s, and a 52 MB
`hostname` was refused after 13.5 s and echoed back whole. A file over the limit is refused
before it is parsed; every message that repeats what the user gave (a value, a key, a YAML
error's reason) shows a prefix and how long it was; bytes that are not UTF-8 are reported by
line and column. Through `invoke` (the CLI's flags, its output as text):
tests/e2e/test_config_input.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_gdk_yml

from gdk_geo.errors import SHOWN_CHARS, ConfigError
from gdk_geo.settings import config, config_edit
from gdk_geo.settings.gdk_yml import MAX_BYTES

LONG = 60_000  # a value far past what a message may show, in a file under the limit


SHORT_MESSAGE = 1_000  # characters: a message of a few lines, whatever was given


def _refusal(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    return raised.value


def _shown_once_as_a_prefix(message: str, given: str) -> None:
    assert given not in message
    assert given[:SHOWN_CHARS] in message
    assert f"({len(given):,} characters)" in message
    assert len(message) < SHORT_MESSAGE, message[:300]


def test_an_oversized_gdk_yml_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    padding = "# a comment line padding the file past any real gdk.yml\n"
    text = "hostname: localhost\n" + padding * (MAX_BYTES // len(padding) + 1)
    path = write_gdk_yml(tmp_path, text)

    error = _refusal(path)

    assert "larger than the 64 KiB a gdk.yml may be" in error.what, error.what
    assert f"({len(text):,} bytes)" in error.what
    assert len(str(error)) < SHORT_MESSAGE


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    text = "hostname: localhost\n"
    text += "#" * (MAX_BYTES - len(text) - 1) + "\n"
    assert config.load(write_gdk_yml(tmp_path, text)).hostname == "localhost"


def test_geo_config_set_refuses_an_oversized_file_and_leaves_it(tmp_path: Path) -> None:
    path = write_gdk_yml(tmp_path, "hostname: localhost\n" + "#\n" * MAX_BYTES)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="64 KiB"):
        config_edit.set_value(path, "geo.primary.port", "3101")
    assert path.read_bytes() == before


def test_a_gdk_yml_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    """A directory (or an endless device) where gdk.yml should be: no traceback, no hang."""
    (tmp_path / "gdk.yml").mkdir()
    assert "cannot be read (Is a directory)" in _refusal(tmp_path / "gdk.yml").what
    (tmp_path / "gdk.yml").rmdir()
    (tmp_path / "gdk.yml").symlink_to("/dev/zero")
    assert "larger than the 64 KiB" in _refusal(tmp_path / "gdk.yml").what


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b"hostname: \xff\n", 1, 11),
        # Columns count characters: the é before the bad byte is one column, two bytes.
        (b"# \xc3\xa9t\xc3\xa9\ngeo:\n  primary:\n    port: \xc3\xa930\xe901\n", 4, 14),
    ],
)
def test_bytes_that_are_not_utf8_are_named_by_line_and_column(
    tmp_path: Path, data: bytes, line: int, column: int
) -> None:
    (tmp_path / "gdk.yml").write_bytes(data)
    error = _refusal(tmp_path / "gdk.yml")
    place = f"line {line}, column {column}"
    assert f"is not UTF-8 text at {place}" in error.what, error.what
    assert "byte " not in error.what and "position" not in error.what
    assert error.where == f"{tmp_path / 'gdk.yml'}:{line}:{column}"
    with pytest.raises(ConfigError, match=place):  # set read it without a check: a traceback
        config_edit.set_value(tmp_path / "gdk.yml", "hostname", "gdk.test")


def test_a_long_value_is_echoed_only_as_a_prefix(tmp_path: Path) -> None:
    hostname = "h" * LONG + "!"
    error = _refusal(write_gdk_yml(tmp_path, f"hostname: {hostname}\n"))
    assert "gdk.yml:1: hostname: got 'hhhh" in error.what
    _shown_once_as_a_prefix(str(error), hostname)


def test_a_long_unknown_key_is_echoed_only_as_a_prefix(tmp_path: Path) -> None:
    key = "k" * 1000  # YAML's longest plain key: a longer one is a syntax error
    error = _refusal(write_gdk_yml(tmp_path, f"geo:\n  {key}: 1\n"))
    _shown_once_as_a_prefix(str(error), "geo." + key)


@pytest.mark.parametrize(
    "text",
    [
        "hostname: !!float " + "a" * LONG + "\n",  # the constructor's reason holds the value
        "hostname: " + "a" * LONG + "\nhostname: b\n",  # "found duplicate key ... with value"
    ],
    ids=["unreadable value", "duplicate key"],
)
def test_a_yaml_error_echoes_only_a_prefix_of_the_value(tmp_path: Path, text: str) -> None:
    error = _refusal(write_gdk_yml(tmp_path, text))
    assert "a" * LONG not in str(error)
    assert len(str(error)) < SHORT_MESSAGE, str(error)[:300]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hostname", "h" * LONG),
        ("geo.primary.port", "9" * LONG),  # not a number: refused by the command line's parse
        ("registry.auth_enabled", "y" * LONG),
        ("data_dir", "d" * LONG),  # an OSError's text names the path
        (
            "geo.secondary.registry_replication.primary_api_url",
            f"http://{'u' * LONG}@localhost:5000",
        ),
        ("k" * LONG, "1"),  # an unknown setting
    ],
)
def test_geo_config_set_echoes_only_a_prefix(tmp_path: Path, key: str, value: str) -> None:
    path = write_gdk_yml(tmp_path, "hostname: localhost\n")
    with pytest.raises(ConfigError) as raised:
        config_edit.set_value(path, key, value)
    message = str(raised.value)
    for given in (key, value):
        assert len(given) <= SHOWN_CHARS or given not in message
    assert len(message) < SHORT_MESSAGE, message[:300]
    assert path.read_text() == "hostname: localhost\n"


def test_a_long_node_name_is_echoed_only_as_a_prefix(tmp_path: Path) -> None:
    path = write_gdk_yml(tmp_path, "geo:\n  nodes:\n    dc1: {port: 4101}\n    dc2: {port: 4102}\n")
    key = f"geo.nodes.{'n' * LONG}.port"
    with pytest.raises(ConfigError) as got:
        config_edit.get(path, key)
    with pytest.raises(ConfigError) as set_:
        config_edit.set_value(path, key, "4103")
    for message in (str(got.value), str(set_.value)):  # set names the node's section
        assert "n" * LONG not in message and "characters)" in message
        assert len(message) < SHORT_MESSAGE, message[:300]


def test_many_problems_are_counted_not_all_listed(tmp_path: Path) -> None:
    """A file of thousands of unknown keys listed each one: a message as long as the file."""
    error = _refusal(write_gdk_yml(tmp_path, "".join(f"k{n}: 1\n" for n in range(3000))))
    assert "(3000 problems)" in error.what
    assert "gdk.yml:1: k0: unknown key" in error.what
    assert "k2999" not in error.what and "and 2980 more" in error.what
    assert len(str(error)) < 10 * SHORT_MESSAGE
