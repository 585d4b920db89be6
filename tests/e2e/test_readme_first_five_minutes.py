"""The README's "First five minutes" runs as shown, in a new shell, after `make run`.

The lines between `<!-- first-five-minutes:begin -->` and `<!-- first-five-minutes:end -->`
are run verbatim by `bash` (`-e -o pipefail`: the first failing line fails the test), in a
fresh environment (a HOME of its own, so Docker's and skopeo's logins are the test's; a
PATH without any virtualenv, so `invoke` is found only the way the lines find it), in a
copy of the repository on which `make run` has just run, as a newcomer's clone would be.

Two things differ from a newcomer's clone, so that the test never touches a developer's
own nodes (which hold the default ports and container prefix):

- the copy's gdk.yml uses free ports and a container prefix of its own, and in the lines
  the default ports (5000, 5001, 3001, 3002 after a `:`, as in `localhost:5000`) are
  replaced by the copy's; nothing else in them is changed;
- the copy's `.venv` is a link to this checkout's, which `make test` has just brought up to
  date: `make run` there finds it current and, like a second `make run`, installs nothing.

Afterwards the copy's registries are logged out of, its project destroyed with its data,
and the images the lines made or pulled are removed from the engine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO_ROOT, ports_yml, unique_prefix

from testkit.net import free_ports

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BEGIN, END = "<!-- first-five-minutes:begin -->", "<!-- first-five-minutes:end -->"
DEFAULT_PORTS = ("5000", "3001", "5001", "3002")  # primary registry, primary, secondary...
PORT_AFTER_COLON = re.compile(r"(?<=:)(" + "|".join(DEFAULT_PORTS) + r")\b")
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def first_five_minutes(readme: str) -> str:
    """The shell lines of the README's first-five-minutes section: its fenced blocks."""
    _, begin, rest = readme.partition(BEGIN)
    section, end, after = rest.partition(END)
    once = begin and end and BEGIN not in section + after and END not in after
    assert once, f"README.md must hold {BEGIN} ... {END} once"
    blocks = FENCE.findall(section)
    assert blocks, "the first-five-minutes section holds no fenced code block"
    return "".join(blocks)


def with_ports(lines: str, ports: dict[str, int]) -> str:
    """`lines` with each default port after a `:` replaced by the test project's."""
    return PORT_AFTER_COLON.sub(lambda match: str(ports[match[1]]), lines)


def copy_of_checkout(target: Path) -> Path:
    """The files a clone of this checkout holds (as they are now, edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)  # mtimes kept: make sees what it saw here
    return target


def fresh_environment(home: Path) -> dict[str, str]:
    """What a new login shell has: HOME, a PATH without virtualenvs, a UTF-8 locale; the
    engine's address when one is set."""
    venvs = {str(REPO_ROOT / ".venv" / "bin"), str(Path(sys.prefix) / "bin")}
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in venvs]
    environment = {
        "HOME": str(home),
        "PATH": os.pathsep.join(path or ["/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
    }
    if "DOCKER_HOST" in os.environ:
        environment["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return environment


def shell(command: str, clone: Path, env: dict[str, str], timeout: float = 600):
    return subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def clone(docker_client, tmp_path: Path) -> Iterator[tuple[Path, dict[str, int]]]:
    for tool in ("git", "make", "docker", "skopeo", "tar"):
        if shutil.which(tool) is None:
            pytest.skip(f"the README's first five minutes need {tool}")
    if not (REPO_ROOT / ".venv" / "bin" / "invoke").exists():
        pytest.skip("no .venv in this checkout: run the tests with `make test`")
    clone = copy_of_checkout(tmp_path / "gdk-geo")
    (clone / ".venv").symlink_to(REPO_ROOT / ".venv")
    current = subprocess.run(["make", "-q", ".venv/.installed"], cwd=clone, capture_output=True)
    if current.returncode != 0:  # `make run` would reinstall this checkout's venv from the copy
        pytest.skip(".venv is older than pyproject.toml: run `make bytecode` first")
    primary, primary_registry, secondary, secondary_registry = free_ports(4)
    (clone / "gdk.yml").write_text(
        ports_yml(primary, primary_registry, secondary, secondary_registry, unique_prefix("f"))
    )
    ports = {"5000": primary_registry, "3001": primary, "5001": secondary_registry}
    ports["3002"] = secondary
    yield clone, ports


def test_the_first_five_minutes_run_verbatim_after_make_run(
    clone: tuple[Path, dict[str, int]], docker_client, tmp_path: Path
) -> None:
    root, ports = clone
    lines = with_ports(first_five_minutes((REPO_ROOT / "README.md").read_text()), ports)
    assert ". .venv/bin/activate" in lines.splitlines()[0]  # `invoke` is not on PATH before
    home = tmp_path / "home"
    home.mkdir()
    env = fresh_environment(home)
    registries = [f"localhost:{ports['5000']}", f"localhost:{ports['5001']}"]
    try:
        made = shell("make run", root, env)
        assert made.returncode == 0, made.stdout + made.stderr
        ran = shell(f"set -e -o pipefail -x\n{lines}", root, env)
        assert ran.returncode == 0, f"{lines}\n---\n{ran.stdout}\n{ran.stderr}"
        for registry in registries:
            assert f"logged in to {registry}" in ran.stdout, ran.stdout
        assert "Traceback" not in ran.stdout + ran.stderr, ran.stdout + ran.stderr
    finally:
        for registry in registries:
            shell(f"docker logout {registry}", root, env, timeout=60)
        destroyed = shell(".venv/bin/invoke geo.destroy --yes --data", root, env, timeout=180)
        for image in docker_client.images.list():
            for tag in image.tags:
                if tag.split("/")[0] in registries:
                    docker_client.images.remove(tag)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
