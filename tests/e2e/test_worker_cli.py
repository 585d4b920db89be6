"""`geo.sync` and `geo.verify` through a running worker, and the worker API's guards.

A project is rendered (`geo.reconfigure`, no containers) and its secondary worker runs for
real (`python -m gdk_geo.secondary`) on the rendered gitlab.yml. Nothing serves the
registries or the primary's event API, which is all these tests need: a pass over the
failed repositories (none) touches no registry, and a verification meets an unreadable
primary. The replication itself through the worker is in `test_worker_api.py`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import FIXED_SECRETS, REPO_ROOT, invoke, ports_yml, seed_secrets, write_gdk_yml

from gdk_geo.node.settings import SecondaryWorkerSettings, load_secondary
from testkit.net import free_ports, wait_for

ACTIONS = ("/admin/geo/resync", "/admin/geo/reverify")
# What `geo.sync` may not import when the worker answers: the engine and its libraries.
ENGINE = (
    "gdk_geo.secondary",
    "gdk_geo.registry",
    "aiohttp",
    "httpx",
    "httpcore",
    "jinja2",
    "starlette",
    "uvicorn",
    "docker",
    "cryptography",
)


class RunningWorker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.gitlab_yml = root / ".gdk-geo/secondary/config/gitlab.yml"
        self.settings: SecondaryWorkerSettings = load_secondary(self.gitlab_yml)
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.log = root / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gdk_geo.secondary", "--config", str(self.gitlab_yml)],
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for("the worker", self._healthy, lambda: self.log.read_text())

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    root = tmp_path_factory.mktemp("cli")
    write_gdk_yml(root, ports_yml(*free_ports(4)))
    seed_secrets(root)
    done = invoke(root, "geo.reconfigure")
    assert done.returncode == 0, done.stderr
    running = RunningWorker(root)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _token() -> dict[str, str]:
    return {"Authorization": f"Bearer {FIXED_SECRETS['node_token']}"}


def test_geo_sync_asks_the_worker(worker: RunningWorker) -> None:
    result = invoke(worker.root, "geo.sync", "--failed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "0 synced, 0 failed"
    assert "note:" not in result.stderr, "the worker answered: no in-process fallback"


def test_a_name_the_worker_refuses_is_a_user_error(worker: RunningWorker) -> None:
    result = invoke(worker.root, "geo.sync", "--repo", "Group/App")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "note:" not in result.stderr, "a refused name is not a reason to run in-process"
    assert "'Group/App' is not a repository name" in result.stderr
    assert "fix:   use the path part of the image" in result.stderr


def test_geo_verify_through_the_worker_reports_an_unreadable_primary(
    worker: RunningWorker,
) -> None:
    result = invoke(worker.root, "geo.verify")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr  # no note: the worker ran it
    assert lines[0].startswith("✗ cannot read the primary registry at ")
    assert lines[1].startswith("  fix:   ") and "invoke geo.setup" in lines[1]


def _modules(importtime: str) -> set[str]:
    """Module names in `python -X importtime` output (`import time: self | cumulative | name`)."""
    found = set()
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", line)
        if match:
            found.add(match.group(1))
    return found


def _imported(root: Path, *args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "invoke", "-r", str(REPO_ROOT), *args],
        capture_output=True,
        text=True,
        env={"GDK_GEO_ROOT": str(root), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        timeout=60,
        check=True,
    )
    return _modules(result.stderr)


def test_geo_sync_imports_no_engine_beyond_invoke_list(worker: RunningWorker) -> None:
    """The import-time bound, on what is imported: beyond what `invoke --list` loads,
    `geo.sync` through the worker loads only its client, the settings reader and standard
    library modules, and none of the sync engine (whose import is most of a cold start)."""
    baseline = _imported(worker.root, "--list")
    assert "gdk_geo.cli.tasks" in baseline
    extra = _imported(worker.root, "geo.sync", "--failed") - baseline
    assert "gdk_geo.ops.worker_client" in extra, "the task went through the worker client"
    engine = sorted(name for name in extra if name.startswith(ENGINE))
    assert not engine, f"geo.sync imported the engine: {engine}"
    ours = {"gdk_geo.cli.passes", "gdk_geo.ops.worker_client", "gdk_geo.node.settings"}
    ours |= {"gdk_geo.ops", "gdk_geo.node"}  # their packages' faces, which import nothing
    others = sorted(
        name
        for name in extra - ours
        if name.split(".")[0] not in sys.stdlib_module_names
        and not name.startswith(("encodings.", "rich.", "ruamel."))
    )
    assert not others, f"geo.sync imported more than its client: {others}"


def test_the_api_needs_the_node_token(worker: RunningWorker) -> None:
    url = f"{worker.url}/api/v4/geo/container_repositories"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(f"{url}/resync", json={"failed": True}).status_code == 401
    assert httpx.post(f"{url}/reverify", json={}).status_code == 401
    assert httpx.get(f"{worker.url}/api/v4/geo/passes/1-1/events").status_code == 401
    listing = httpx.get(url, headers=_token())
    assert listing.status_code == 200
    assert listing.json()["repositories"] == []
    gitlab_style = httpx.get(url, headers={"PRIVATE-TOKEN": FIXED_SECRETS["node_token"]})
    assert gitlab_style.status_code == 200
    assert httpx.get(url, params={"state": "bogus"}, headers=_token()).status_code == 400


def test_a_pass_returns_at_once_and_streams_to_its_end(worker: RunningWorker) -> None:
    base = f"{worker.url}/api/v4/geo"
    started = httpx.post(f"{base}/container_repositories/reverify", json={}, headers=_token())
    assert started.status_code == 202
    events_url = started.json()["events_url"]
    with httpx.stream("GET", f"{worker.url}{events_url}", headers=_token(), timeout=60) as lines:
        assert lines.headers["content-type"].startswith("application/x-ndjson")
        events = [httpx.Response(200, content=line).json() for line in lines.iter_lines() if line]
    assert events[-1]["type"] == "done"
    assert events[-1]["error"] == "unreadable" and events[-1]["side"] == "primary"
    bad = httpx.post(
        f"{base}/container_repositories/resync", json={"repositories": ["UP/"]}, headers=_token()
    )
    assert bad.status_code == 400


def _csrf(worker: RunningWorker) -> str:
    page = httpx.get(f"{worker.url}/admin/geo").text
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match, page
    return match.group(1)


def test_every_action_needs_the_csrf_token(worker: RunningWorker) -> None:
    token = _csrf(worker)
    for action in ACTIONS:
        form = {"failed": "1"} if action.endswith("resync") else {"all": "1"}
        refused = httpx.post(f"{worker.url}{action}", data=form)
        assert refused.status_code == 403, action
        wrong = httpx.post(f"{worker.url}{action}", data=form, headers={"X-CSRF-Token": "x"})
        assert wrong.status_code == 403, action
        accepted = httpx.post(f"{worker.url}{action}", data=form, headers={"X-CSRF-Token": token})
        assert accepted.status_code == 202, (action, accepted.text)
        plain_form = httpx.post(f"{worker.url}{action}", data={**form, "csrf_token": token})
        assert plain_form.status_code == 303, action
        assert httpx.get(f"{worker.url}{action}").status_code == 405, "actions are POST only"


def test_a_foreign_host_is_refused_everywhere(worker: RunningWorker) -> None:
    token = _csrf(worker)
    foreign = {"Host": f"rebound.example:{worker.settings.port}", "X-CSRF-Token": token}
    for action in ACTIONS:
        response = httpx.post(f"{worker.url}{action}", data={"all": "1"}, headers=foreign)
        assert response.status_code == 403, action
    for path in ("/admin/geo", "/admin/geo/repositories.json", "/-/metrics"):
        assert httpx.get(f"{worker.url}{path}", headers=foreign).status_code == 403, path
    api = f"{worker.url}/api/v4/geo/container_repositories"
    assert httpx.get(api, headers={**_token(), "Host": "rebound.example"}).status_code == 403
    own = {"Host": f"localhost:{worker.settings.port}"}
    assert httpx.get(f"{worker.url}/admin/geo", headers=own).status_code == 200


def test_no_secret_in_the_page_or_its_json(worker: RunningWorker) -> None:
    secrets = list(FIXED_SECRETS.values())
    for path in ("/admin/geo", "/admin/geo/repositories.json", "/api/v4/geo/replication/status"):
        body = httpx.get(f"{worker.url}{path}").text
        assert not [s for s in secrets if s in body], path


def test_metrics_count_every_sync_and_verification_state(worker: RunningWorker) -> None:
    text = httpx.get(f"{worker.url}/-/metrics").text
    for state in ("pending", "started", "synced", "failed"):
        assert f'gdk_geo_repositories{{state="{state}"}} 0' in text
    for state in ("pending", "succeeded", "failed"):
        assert f'gdk_geo_repositories_verification{{state="{state}"}} 0' in text
