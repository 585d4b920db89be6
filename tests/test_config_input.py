"""gdk.yml of any size and any bytes: refused at once, with a short message.

Issue 25 #11: a valid gdk.yml padded with comments to 50 MB printed nothing for 300 s. A
file over the limit is refused before it is parsed.
Issue 25 #14: bytes that are not UTF-8 are reported by line and column, not byte offset.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import invoke, write_gdk_yml

from gdk_geo.errors import ConfigError
from gdk_geo.settings import config, config_edit
from gdk_geo.settings.gdk_yml import MAX_BYTES

SHORT_MESSAGE = 1_000  # characters: a message of a few lines, whatever was given


def _refusal(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    return raised.value


def test_an_oversized_gdk_yml_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    padding = "# a comment line padding the file past any real gdk.yml\n"
    text = "hostname: localhost\n" + padding * (MAX_BYTES // len(padding) + 1)
    path = write_gdk_yml(tmp_path, text)

    started = time.monotonic()
    error = _refusal(path)
    elapsed = time.monotonic() - started

    assert "larger than the 64 KiB a gdk.yml may be" in error.what, error.what
    assert f"({len(text):,} bytes)" in error.what
    assert len(str(error)) < SHORT_MESSAGE
    # Benchmark note, not the assertion that matters: parsing this file took over a second.
    assert elapsed < 0.5, elapsed


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


def test_the_cli_refuses_an_oversized_file(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "hostname: localhost\n" + "# padding\n" * (5 * MAX_BYTES // 10))
    result = invoke(tmp_path, "geo.config.get", "hostname", timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "64 KiB" in result.stderr
    assert len(result.stderr) < SHORT_MESSAGE


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
