"""A previous release of gdk-geo, run beside this one: for upgrade tests.

Its files come from this repository's history (`git archive <commit>`), and it runs with
this venv's libraries but its own `gdk_geo`, so a project can be set up by the old code and
then taken over by the new.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import REPO_ROOT


def previous_release(commit: str, target: Path) -> Path:
    """Release `commit`'s files, from git history (a fresh clone has them)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        timeout=60,
    )
    if archive.returncode != 0:
        pytest.fail(f"commit {commit} is not in this clone's history: {archive.stderr!r}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


def old_python(old: Path) -> Path:
    """A venv whose `gdk_geo` is the previous release's, with this one's libraries.

    Our own venv imports `gdk_geo` through its editable install, ahead of PYTHONPATH; a
    `.pth` in a fresh venv puts the old checkout first and our site-packages after it
    (their own `.pth` files, the editable install among them, are not read from there).
    """
    venv = old.parent / "previous-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = next(p for p in sys.path if p.endswith("site-packages"))
    (site_packages(venv) / "previous.pth").write_text(f"{old}\n{ours}\n")
    return venv / "bin" / "python"


def site_packages(venv: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def old_invoke(python: Path, old: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    """`invoke` run by the previous release (its tasks, and the services they start)."""
    env = {**os.environ, "GDK_GEO_ROOT": str(root)}
    return subprocess.run(
        [str(python), "-m", "invoke", "-r", str(old), *args],
        cwd=old,  # not ours: `python -m` puts the working directory first on the path
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
