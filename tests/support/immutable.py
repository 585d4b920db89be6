"""Files made immutable (`chattr +i`) by a test, and commands that must succeed.

The tracking database's check is tested on files root itself cannot write; the `chattr`
fixture (registered in tests/conftest.py) hands a test a list to put such paths in and
makes them mutable again afterwards whatever happens, since nothing, not even pytest's
clean-up, could remove them otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest


def run_ok(argv: list[str], prefix: Sequence[str] = ()) -> None:
    """Run `argv` (after `prefix`, such as nsenter's), failing the test when it fails."""
    result = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"


def _chattr_works(directory: Path) -> bool:
    probe = directory / "chattr-probe"
    probe.touch()
    works = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
    probe.unlink()
    return works


def immutable_paths(directory: Path) -> Iterator[list[Path]]:
    """The `chattr` fixture's body: a list for the test's immutable paths, or a skip where
    the filesystem or user cannot set the attribute."""
    if shutil.which("chattr") is None or not _chattr_works(directory):
        pytest.skip("this filesystem or user cannot set the immutable attribute")
    flagged: list[Path] = []
    yield flagged
    for each in flagged:
        subprocess.run(["chattr", "-ia", str(each)], capture_output=True)
