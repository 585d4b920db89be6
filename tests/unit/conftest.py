"""tests/unit stays unit: a test here that reaches for Docker, a service or the CLI fails.

`make test-fast` runs this folder where no Docker engine answers and expects every test to
pass, none to skip for want of an engine. So a test here fails, naming where it belongs,
when it asks for the `docker_client` fixture, carries the `docker` marker, opens a Docker
SDK client, or starts `docker`, `skopeo`, `invoke` or one of our services as a process.
Short `python -c` children (a pipe's width, exit hooks, a file opened as another user) and
stand-ins that only look like a service are fine.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

import docker.api.client
import pytest

ELSEWHERE = (
    "move it to tests/integration (real registries and services) or tests/e2e (invoke on a "
    "real project)"
)
TOOLS = frozenset({"docker", "docker-compose", "skopeo", "chromium", "chromedriver"})
MODULES = frozenset({"invoke", "gdk_geo.primary", "gdk_geo.secondary"})


@pytest.fixture(scope="session")
def docker_client() -> None:
    pytest.fail(f"a unit test asked for a Docker engine: {ELSEWHERE}")


def what_it_starts(args: str | bytes | os.PathLike | Sequence) -> str | None:
    """The tool or module a command line starts, when a unit test must not start it."""
    if isinstance(args, str | bytes | os.PathLike):
        argv = shlex.split(os.fsdecode(args))
    else:
        argv = [os.fsdecode(arg) for arg in args]
    if not argv:
        return None
    if Path(argv[0]).name in TOOLS:
        return Path(argv[0]).name
    options = iter(argv[1:])
    for option in options:  # the interpreter's own options, up to -c or -m
        if option == "-m":
            module = next(options, "")
            return module if module in MODULES else None
        if option == "-c":
            script = next(options, "")
            return "invoke" if "run_module('invoke'" in script else None
    return None


@pytest.fixture(autouse=True)
def _stay_unit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("docker"):
        pytest.fail(f"a unit test carries the docker marker: {ELSEWHERE}")

    def no_engine(*_args: object, **_kwargs: object) -> None:
        pytest.fail(f"a unit test opened a Docker client: {ELSEWHERE}")

    popen_init = subprocess.Popen.__init__

    def only_plain_processes(self: subprocess.Popen, args, *rest, **kwargs) -> None:
        started = what_it_starts(args)
        if started is not None:
            pytest.fail(f"a unit test started {started}: {ELSEWHERE}")
        popen_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(docker.api.client.APIClient, "__init__", no_engine)
    monkeypatch.setattr(subprocess.Popen, "__init__", only_plain_processes)
