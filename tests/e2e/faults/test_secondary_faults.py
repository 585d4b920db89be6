"""Faults on the secondary side: its registry gone mid-sync, its worker killed mid-blob, its
tracking database unwritable.

What must hold in each: the sync completes once the fault is gone, no manifest is ever
visible on the secondary before every blob it references, no repository is left `started`,
the tracking database is intact, and `invoke geo.verify` ends clean.

The images here have three 32 MiB layers: large enough that a copy is caught in flight
(the tests wait for the secondary registry's upload directory to hold a partial blob, then
strike), small enough to keep the suite quick. Seeds are unique per test, so no layer can
be mounted from an earlier test's repository instead of being copied.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from faults_kit import DEADLINE, Scratch, kill

from gdk_geo.registry.reference import ACCEPT_MANIFESTS
from gdk_geo.runtime import services
from testkit.images import Blob, seeded_blob
from testkit.net import wait_for
from testkit.watch import Watch

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LAYER_SIZE = 32 * 1024 * 1024


def large_layers(name: str) -> list[Blob]:
    unique = uuid.uuid4().hex
    return [seeded_blob(f"{name}:{unique}:{i}", LAYER_SIZE) for i in range(3)]


def uploads_dir(nodes_up: Scratch, repo: str) -> Path:
    """Where the secondary registry keeps blob uploads in progress for `repo`."""
    storage = nodes_up.node("secondary").registry_storage
    return storage / "docker" / "registry" / "v2" / "repositories" / repo / "_uploads"


def partial_uploads(nodes_up: Scratch, repo: str) -> dict[str, int]:
    """Upload id → bytes received so far, for every upload the secondary registry holds."""
    found = {}
    with contextlib.suppress(FileNotFoundError):
        for upload in uploads_dir(nodes_up, repo).iterdir():
            with contextlib.suppress(FileNotFoundError):
                found[upload.name] = (upload / "data").stat().st_size
    return found


def upload_in_flight(nodes_up: Scratch, repo: str, ignore: set[str]) -> str | None:
    """A new blob upload of `repo` to the secondary that has some bytes, not all; or None."""
    for upload, size in partial_uploads(nodes_up, repo).items():
        if upload not in ignore and 0 < size < LAYER_SIZE:
            return upload
    return None


def wait_mid_blob(nodes_up: Scratch, repo: str, ignore: set[str]) -> str:
    """Wait until a new blob upload to the secondary is under way (some bytes, not all);
    returns its id. Polled often: a 32 MiB copy over loopback takes a fraction of a second."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if upload := upload_in_flight(nodes_up, repo, ignore):
            return upload
        time.sleep(0.005)
    pytest.fail(f"no blob copy of {repo} was ever seen in flight\n{nodes_up.log_tail()}")


def kill_mid_blob(nodes_up: Scratch, repo: str, ignore: set[str]) -> set[str]:
    """SIGKILL the worker while a new blob upload of `repo` is under way; returns the ids of
    every upload it leaves behind, which a later call must not take for new ones.

    Frozen first, then looked at: seeing an upload in flight and then killing raced the
    copy, which on a loaded machine (or beside parallel tests) finished in between, with the
    manifest pushed. A stopped worker sends nothing more, so what is seen is what is killed.
    Every upload the kill leaves is stale from then on (the next worker starts its own), and
    taking one of those for a new copy killed a worker that had already finished.
    """
    pid = nodes_up.service_pid("secondary")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        if upload_in_flight(nodes_up, repo, ignore):
            kill(pid)  # SIGKILL ends a stopped process too
            return set(partial_uploads(nodes_up, repo))
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.005)
    os.kill(pid, signal.SIGCONT)
    pytest.fail(f"no blob copy of {repo} was ever seen in flight\n{nodes_up.log_tail()}")


class ManifestWatch(Watch):
    """Polls the secondary while a test runs: whenever the tag's manifest is visible, every
    blob it references must answer HEAD 200 (a 404 is a violation; a refused connection,
    as when the registry is stopped, is not an answer and is ignored)."""

    def __init__(self, nodes_up: Scratch, repo: str, tag: str) -> None:
        super().__init__()
        self.url = f"{nodes_up.registry_url('secondary')}/v2/{repo}"
        self.tag = tag
        self.violations: list[str] = []
        self.complete_sightings = 0
        self._seen_complete = threading.Event()
        self._client = httpx.Client(
            verify=nodes_up.tls(), timeout=5, auth=nodes_up.login("secondary")
        )

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        self._client.close()

    def poll(self) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            self._check(self._client)

    def _check(self, client: httpx.Client) -> None:
        response = client.get(
            f"{self.url}/manifests/{self.tag}", headers={"Accept": ACCEPT_MANIFESTS}
        )
        if response.status_code != 200:
            return
        manifest = response.json()
        for blob in [manifest["config"], *manifest["layers"]]:
            head = client.head(f"{self.url}/blobs/{blob['digest']}")
            if head.status_code == 404:
                self.violations.append(f"{self.tag} visible while {blob['digest']} is missing")
        self.complete_sightings += 1
        self._seen_complete.set()

    def wait_for_complete_sighting(self, timeout: float = 30) -> bool:
        """Let the watch look once more after replication finished (it polls on its own
        thread, and under load its last poll may predate the finished image)."""
        return self._seen_complete.wait(timeout)


def tracking_rows(db_path: Path) -> dict[str, str]:
    """repository → state, read straight from the tracking database (read-only)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT repository, state FROM repositories"))
    finally:
        db.close()


def integrity(db_path: Path) -> str:
    db = sqlite3.connect(db_path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def test_secondary_registry_stopped_mid_sync_of_a_large_image(nodes_up: Scratch) -> None:
    repo, tag = "secondary-stop/big", "v1"
    secondary = nodes_up.container("secondary")
    with ManifestWatch(nodes_up, repo, tag) as watch:
        digest = nodes_up.push(repo, tag, large_layers(repo))
        wait_mid_blob(nodes_up, repo, ignore=set())
        secondary.stop(timeout=10)
        try:  # until the copy and its retries have given up: how long that is, the load decides
            wait_for(
                f"the worker to record the sync of {repo} as failed",
                lambda: nodes_up.rows().get(repo, {}).get("retry_count", 0) >= 1,
                nodes_up.log_tail,
                timeout=DEADLINE,
            )
        finally:
            secondary.start()
        nodes_up.wait_replicated({(repo, tag): digest})
        nodes_up.wait_synced([repo])
        watch.wait_for_complete_sighting()
    assert watch.violations == []
    assert watch.complete_sightings > 0, "the watch saw the finished image"
    nodes_up.verify_clean()


def test_worker_sigkilled_mid_blob_three_times(nodes_up: Scratch) -> None:
    """Each kill lands in a copy of its own: a tag with new layers is pushed while the worker
    runs, then the worker is killed mid-blob. (Killing three times into the copy of one tag
    raced `geo.setup`: the restarted worker could finish the copy before `geo.setup`
    returned, and then no copy was left to kill.)"""
    repo = "worker-kill/big"
    seen: set[str] = set()
    pushed: dict[tuple[str, str], str] = {}
    with ManifestWatch(nodes_up, repo, "v1") as watch:
        for round_ in range(1, 4):
            tag = f"v{round_}"
            pushed[(repo, tag)] = nodes_up.push(repo, tag, large_layers(repo))
            seen |= kill_mid_blob(nodes_up, repo, ignore=seen)
            assert nodes_up.digest("secondary", repo, tag) is None
            nodes_up.must("geo.setup")  # starts the worker again, touches nothing else
        nodes_up.wait_replicated(pushed)
        nodes_up.wait_synced([repo])
        watch.wait_for_complete_sighting()
    assert watch.violations == []
    assert nodes_up.replication()["counts"]["started"] == 0
    states = tracking_rows(nodes_up.node("secondary").tracking_db)
    assert "started" not in states.values(), states
    assert "re-queued" in nodes_up.node("secondary").service_log.read_text()
    nodes_up.verify_clean()


# -- an unwritable tracking database -----------------------------------------------------------


def _mount(*args: str) -> None:
    """`mount <args>`; a test that needs it is skipped, with the reason, where it is refused."""
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}): needs root and mount rights")


def _umount(path: Path) -> None:
    """Unmount `path`; lazily when something still holds it (a test that failed midway)."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=True)


@contextlib.contextmanager
def worker_stopped(nodes_up: Scratch) -> Iterator[Path]:
    """The worker stopped, yielding its `geo/` directory; the worker is started again after
    (by `geo.setup`, as a user would) whatever the test did in between."""
    paths = nodes_up.node("secondary")
    services.stop(paths)
    try:
        yield paths.root / "geo"
    finally:
        services.stop(paths)
        nodes_up.must("geo.setup")


def start_worker_here(nodes_up: Scratch) -> int:
    """Start the worker as a child of this test, so its exit status can be read."""
    pid, started = services.start(nodes_up.node("secondary"))
    assert started
    return pid


def exit_status(pid: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    pytest.fail(f"the worker (pid {pid}) did not exit")


def log_since(nodes_up: Scratch, offset: int) -> str:
    """What the worker logged after `offset` bytes (the log accumulates across tests)."""
    with open(nodes_up.node("secondary").service_log, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def log_size(nodes_up: Scratch) -> int:
    return nodes_up.node("secondary").service_log.stat().st_size


def fill(directory: Path) -> Path:
    """Write a file in `directory` until its filesystem has no space left (unbuffered, so
    closing it has nothing left to flush)."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle, pytest.raises(OSError) as full:
        while True:
            handle.write(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


@contextlib.contextmanager
def on_tiny_tmpfs(nodes_up: Scratch, geo: Path, size: str) -> Iterator[None]:
    """Move the tracking database onto a tmpfs of `size`, and back again after (with the
    worker stopped first, should the test have failed while it ran)."""
    saved = geo.with_name("geo.saved")
    geo.rename(saved)
    geo.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(geo))
    except BaseException:
        geo.rmdir()
        saved.rename(geo)
        raise
    try:
        for item in saved.iterdir():
            shutil.copy2(item, geo / item.name)
        yield
        for item in geo.glob("tracking.sqlite3*"):
            shutil.copy2(item, saved / item.name)
    finally:
        services.stop(nodes_up.node("secondary"))
        _umount(geo)
        geo.rmdir()
        saved.rename(geo)


def test_tracking_database_on_a_full_disk(nodes_up: Scratch) -> None:
    """The disk fills while the worker runs: its next write fails, it exits non-zero with one
    clear line, the database is intact, and nothing is lost once there is space again."""
    before = {
        (f"full-disk/old-{i}", "v1"): nodes_up.push(f"full-disk/old-{i}", "v1") for i in range(2)
    }
    nodes_up.wait_replicated(before)
    nodes_up.wait_synced([repo for repo, _ in before])
    with worker_stopped(nodes_up) as geo, on_tiny_tmpfs(nodes_up, geo, "1m"):
        offset = log_size(nodes_up)
        pid = start_worker_here(nodes_up)
        wait_for(
            "the worker",
            lambda: nodes_up.replication()["event_feed"]["connected"],
            timeout=DEADLINE,
        )
        filler = fill(geo)
        during = {("full-disk/new", "v1"): nodes_up.push("full-disk/new", "v1")}
        assert exit_status(pid) != 0
        logged = log_since(nodes_up, offset)
        assert "Traceback" not in logged, logged
        line = logged.strip().splitlines()[-1]
        assert line.startswith("gdk-geo worker: the Geo tracking database cannot be used")
        assert "free disk space" in line, line
        filler.unlink()
        assert integrity(geo / "tracking.sqlite3") == "ok"
    nodes_up.wait_replicated({**before, **during})
    nodes_up.wait_synced(["full-disk/new"])
    nodes_up.verify_clean()


def test_tracking_database_read_only(nodes_up: Scratch) -> None:
    """Root ignores file modes, so the database is made read-only the way root cannot
    override: its directory bind-mounted read-only."""
    with worker_stopped(nodes_up) as geo:
        database = geo / "tracking.sqlite3"
        before = database.read_bytes()
        _mount("--bind", str(geo), str(geo))
        try:
            _mount("-o", "remount,bind,ro", str(geo))
            offset = log_size(nodes_up)
            pid = start_worker_here(nodes_up)
            assert exit_status(pid) == 1
            logged = log_since(nodes_up, offset)
            assert "Traceback" not in logged, logged
            line = logged.strip().splitlines()[-1]
            assert line.startswith("gdk-geo worker: the Geo tracking database cannot be used")
            assert "writable" in line, line
        finally:
            services.stop(nodes_up.node("secondary"))
            _umount(geo)
        assert database.read_bytes() == before
        assert integrity(database) == "ok"
    repo = "read-only/after"
    nodes_up.wait_replicated({(repo, "v1"): nodes_up.push(repo, "v1")})
    nodes_up.verify_clean()
