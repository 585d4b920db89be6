"""gdk.yml and command-line values of any size through `invoke`: refused at once, echoed
only as a prefix, printed as text (never read as the console's markup). The same through the
functions the tasks call: tests/unit/settings/test_config_input.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import invoke, write_gdk_yml

from gdk_geo.errors import SHOWN_CHARS
from gdk_geo.settings.gdk_yml import MAX_BYTES

LONG = 60_000  # a value far past what a message may show, in a file under the limit


SHORT_MESSAGE = 1_000  # characters: a message of a few lines, whatever was given


def _shown_once_as_a_prefix(message: str, given: str) -> None:
    assert given not in message
    assert given[:SHOWN_CHARS] in message
    assert f"({len(given):,} characters)" in message
    assert len(message) < SHORT_MESSAGE, message[:300]


def test_the_cli_refuses_an_oversized_file(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "hostname: localhost\n" + "# padding\n" * (5 * MAX_BYTES // 10))
    result = invoke(tmp_path, "geo.config.get", "hostname", timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "64 KiB" in result.stderr
    assert len(result.stderr) < SHORT_MESSAGE


def test_the_cli_echoes_only_a_prefix(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "hostname: localhost\n")
    hostname = "h" * LONG + "!"
    result = invoke(tmp_path, "geo.config.set", "hostname", hostname, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    _shown_once_as_a_prefix(result.stderr, hostname)


@pytest.mark.parametrize("value", ["[/x]", "[bold]bold[/bold]", "[link=file:///etc]x"])
def test_a_value_is_printed_as_given_never_as_console_markup(tmp_path: Path, value: str) -> None:
    """A refused value holding rich markup was read as markup: `[/x]` raised MarkupError with
    a traceback, `[bold]` was swallowed from the message."""
    write_gdk_yml(tmp_path, "hostname: localhost\n")
    result = invoke(tmp_path, "geo.config.set", "hostname", value, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert repr(value) in result.stderr


@pytest.mark.parametrize("given", ["[/x]", "n" * LONG], ids=["markup", "long"])
@pytest.mark.parametrize(
    "args",
    [
        ("geo.logs", "--node"),
        ("geo.logs", "--tail"),
        ("geo.promote", "--node", "secondary", "--timeout"),
    ],
    ids=["--node", "--tail", "--timeout"],
)
def test_a_refused_flag_is_printed_as_given_and_short(
    tmp_path: Path, args: tuple[str, ...], given: str
) -> None:
    """`--node '[/x]'` and `--timeout '[/x]'` ended in a MarkupError traceback, and a long
    value was echoed whole (`--tail` too)."""
    write_gdk_yml(tmp_path, "hostname: localhost\n")
    result = invoke(tmp_path, *args, given, timeout=60)
    assert result.returncode == 2, result.stderr[-300:]
    assert "Traceback" not in result.stderr
    assert repr(given[:SHOWN_CHARS]) in result.stderr
    assert len(result.stderr) < SHORT_MESSAGE
