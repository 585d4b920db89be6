"""The tasks' console when stdout is not a terminal: no wrapping, no cropping."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import REPO_ROOT

WIDE_TABLE = """
from rich.table import Table
from gdk_geo.cli.console import out
table = Table(title="gdk-geo nodes")
for column in ("node", "container", "image", "registry", "Geo service", "certificate"):
    table.add_column(column, no_wrap=True)
table.add_row("secondary", "gdkgeo-t0123456-secondary-registry", "gdk-geo/registry:local",
              "https://localhost:5001", "http://localhost:3002 pid 12345", "valid 364 days")
out.print(table)
"""


def test_a_wide_table_is_not_cropped_in_a_pipe() -> None:
    """Issue 13 #25: in a pipe rich assumed 80 columns and cropped table cells with "…"."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run(
        [sys.executable, "-c", WIDE_TABLE],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "gdkgeo-t0123456-secondary-registry" in result.stdout
    assert "http://localhost:3002 pid 12345" in result.stdout
    assert "…" not in result.stdout
