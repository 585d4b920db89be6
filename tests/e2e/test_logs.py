"""`invoke geo.logs` on a real project: four logs, one time line, prefixes, --node, --follow.

The project's services run with a time zone far from UTC (UTC+5:30, a POSIX TZ string, so
no tzdata is needed): the Geo logs then write local times 5.5 hours away from Docker's UTC
stamps, and a conversion mistake would put every registry line hours away from where it
belongs, which the window check below catches. The timestamps' conversions themselves are
tests/unit/runtime/test_logs.py.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from helpers import interruptible_invoke, invoke, running_project, write_gdk_yml

from gdk_geo.doctor.notification_probe import PROBE_REPOSITORY, Delivery, Endpoint, probe_delivery
from gdk_geo.node import settings as node_settings
from gdk_geo.node.token_auth import ALL_ACTIONS, PULL, tool_tokens
from gdk_geo.project import Project

SOURCES = {"primary registry", "primary geo", "secondary registry", "secondary geo"}
_LINE = re.compile(r"^(?P<source>[a-z]+ [a-z]+) +\| (?P<text>.*)$")
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3})([+-]\d{4})? ")
FOLLOW_DEADLINE = 30.0


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory, far_timezone) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("logs")
    with running_project(root, "l") as project:
        yield project


def _probe(project: Project) -> Delivery:
    """A push that leaves lines in all four logs: received, notified, synced, copied."""
    cfg = project.load()
    primary, secondary = project.node(cfg, "primary"), project.node(cfg, "secondary")
    token = (project.secrets_dir(cfg) / "node_token").read_text().strip()
    auth = {
        "primary": node_settings.load_primary(primary.gitlab_yml).auth,
        "secondary": node_settings.load_secondary(secondary.gitlab_yml).auth,
    }
    return probe_delivery(
        Endpoint(
            cfg.node("primary").registry_url,
            primary.certificate,
            tool_tokens(auth["primary"], ALL_ACTIONS),
        ),
        cfg.node("primary").service_url,
        token,
        replica=Endpoint(
            cfg.node("secondary").registry_url,
            secondary.certificate,
            tool_tokens(auth["secondary"], PULL),
        ),
    )


def _wait_for_worker_log(project: Project, text: str) -> None:
    log = project.node(project.load(), "secondary").service_log
    deadline = time.monotonic() + FOLLOW_DEADLINE
    while text not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in log.read_text(), f"the worker never logged {text!r}"


def _parsed(stdout: str) -> list[tuple[str, str]]:
    """(source, text) per line; every line must carry a source prefix."""
    lines = []
    for line in stdout.splitlines():
        match = _LINE.match(line)
        assert match and match["source"] in SOURCES, f"line without a source prefix: {line!r}"
        lines.append((match["source"], match["text"]))
    return lines


def _instant(text: str) -> float | None:
    """The local time a shown line starts with, as a Unix time (this process is in FAR TZ)."""
    match = _TIME.match(text)
    if match is None:
        return None
    moment = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").timestamp()
    return moment + int(match[2]) / 1000


@pytest.mark.docker
def test_all_four_logs_on_one_time_line(project: Project) -> None:
    started = time.time()
    delivery = _probe(project)
    assert delivery.replicated
    _wait_for_worker_log(project, f"synced {PROBE_REPOSITORY}")  # logged just after the copy
    finished = time.time()

    result = invoke(project.root, "geo.logs")
    assert result.returncode == 0, result.stderr
    lines = _parsed(result.stdout)
    assert {source for source, _ in lines} == SOURCES

    instants = [t for t in (_instant(text) for _, text in lines) if t is not None]
    assert instants == sorted(instants), "lines are not in time order"

    # The probe's manifest, as each registry saw it: Docker's UTC stamp, shown in local
    # time, must fall inside the window this test pushed it in.
    manifest = f"/v2/{PROBE_REPOSITORY}/manifests/{delivery.tag}"
    for registry in ("primary registry", "secondary registry"):
        put = [
            _instant(text)
            for source, text in lines
            if source == registry and f"PUT {manifest}" in text
        ]
        assert put, f"{registry}: no PUT of {manifest}"
        assert started - 1 <= put[0] <= finished + 1, f"{registry} time is off: {put[0]}"
    geo_sync = [
        _instant(text)
        for source, text in lines
        if source == "secondary geo" and f"synced {PROBE_REPOSITORY}" in text
    ]
    assert geo_sync and started - 1 <= geo_sync[0] <= finished + 1


@pytest.mark.docker
def test_node_filter(project: Project) -> None:
    result = invoke(project.root, "geo.logs", "--node", "secondary", "--tail", "5")
    assert result.returncode == 0, result.stderr
    sources = [source for source, _ in _parsed(result.stdout)]
    assert set(sources) == {"secondary registry", "secondary geo"}
    assert all(sources.count(source) <= 5 for source in set(sources))


@pytest.mark.docker
def test_a_bad_node_is_a_clear_error(project: Project) -> None:
    result = invoke(project.root, "geo.logs", "--node", "tertiary")
    assert result.returncode == 2
    assert "--node must be primary or secondary" in result.stderr
    assert "Traceback" not in result.stderr


def _ended(process: subprocess.Popen[str]) -> str:
    """Its stderr once it has exited; if it outlives Ctrl-C by 30 s, fail with what it was
    doing: its signal state and every thread's stack (faulthandler, on SIGABRT)."""
    try:
        return process.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        status = Path(f"/proc/{process.pid}/status").read_text()
        signals = [line for line in status.splitlines() if line.startswith("Sig")]
        process.send_signal(signal.SIGABRT)
        stderr = process.communicate(timeout=30)[1]
        pytest.fail(f"geo.logs --follow outlived Ctrl-C by 30 s; {signals}\n{stderr[-8000:]}")


def _reader(stream) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.mark.docker
def test_follow_streams_new_lines_until_ctrl_c(project: Project) -> None:
    # faulthandler: if Ctrl-C ever fails to end it, SIGABRT makes it print every thread.
    env = {**os.environ, "GDK_GEO_ROOT": str(project.root), "COLUMNS": "200"}
    env["PYTHONFAULTHANDLER"] = "1"
    process = subprocess.Popen(
        interruptible_invoke("geo.logs", "--follow"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines = _reader(process.stdout)
        delivery = _probe(project)  # new lines in every log, after the history
        wanted = {
            "primary registry": f"PUT /v2/{PROBE_REPOSITORY}/manifests/{delivery.tag}",
            "secondary registry": f"PUT /v2/{PROBE_REPOSITORY}/manifests/{delivery.tag}",
            "secondary geo": f"synced {PROBE_REPOSITORY}",
        }
        found: set[str] = set()
        deadline = time.monotonic() + FOLLOW_DEADLINE
        while found != set(wanted) and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            source, text = _parsed(line)[0]
            if source in wanted and wanted[source] in text:
                found.add(source)
    finally:
        process.send_signal(signal.SIGINT)
        stderr = _ended(process)
    assert found == set(wanted), f"not followed: {set(wanted) - found}"
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "interrupted" not in stderr


# --- without Docker: the task's own refusals -----------------------------------------------


@pytest.mark.parametrize("tail", ["abc", "-5", "2.5", "²"])
def test_tail_must_be_a_count_of_lines(tmp_path: Path, tail: str) -> None:
    """Issue 13 #16: `--tail abc` was a traceback from invoke's int(), `--tail -5` printed
    everything."""
    write_gdk_yml(tmp_path, "hostname: localhost\n")
    result = invoke(tmp_path, "geo.logs", f"--tail={tail}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"--tail must be a number of lines (0 or more; 0: all), not {tail!r}" in result.stderr
