"""The tracking database: state machine, dedupe, backoff, crash recovery, cursor, bad files."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gdk_geo.doctor import sync_failures
from gdk_geo.registry.backoff import Backoff
from gdk_geo.secondary.repository_index import RepositoryIndex
from gdk_geo.secondary.tracking import TrackingDatabaseError, TrackingDB
from gdk_geo.secondary.tracking_schema import FAILING, RECHECK_DUE

NOW = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> TrackingDB:
    tracking = TrackingDB(tmp_path / "geo" / "tracking.sqlite3", backoff=Backoff(1.0, 300.0))
    yield tracking
    tracking.close()


def test_pending_started_synced(db: TrackingDB) -> None:
    db.mark_pending("group/app", now=NOW)
    assert db.get("group/app").state == "pending"

    assert db.claim_due(10, now=NOW) == ["group/app"]
    assert db.get("group/app").state == "started"
    assert db.claim_due(10, now=NOW) == [], "a started row is not claimed twice"

    assert db.finish_success("group/app", "sha256:abc", now=NOW + 1) == "synced"
    row = db.get("group/app")
    assert (row.state, row.checksum, row.last_synced_at) == ("synced", "sha256:abc", NOW + 1)
    assert row.last_checked_at == NOW + 1


def test_many_events_queue_one_sync(db: TrackingDB) -> None:
    for _ in range(5):
        db.mark_pending("group/app", now=NOW)
    db.mark_many_pending(["group/app", "group/app", "group/other"], now=NOW)
    assert db.counts() == {"pending": 2, "started": 0, "synced": 0, "failed": 0}
    assert sorted(db.claim_due(10, now=NOW)) == ["group/app", "group/other"]


def test_claim_respects_limit_and_prefers_pending(db: TrackingDB) -> None:
    db.mark_pending("a", now=NOW)
    db.claim_due(1, now=NOW)
    db.finish_failure("a", "boom", now=NOW)
    db.mark_many_pending(["b", "c"], now=NOW + 1)
    later = NOW + 1000  # a's retry is due too
    assert db.claim_due(2, now=later) == ["b", "c"]
    assert db.claim_due(2, now=later) == ["a"]


def test_event_rows_are_claimed_before_backfill_rows(db: TrackingDB) -> None:
    db.mark_many_pending([f"backfill/{n}" for n in range(5)], now=NOW)
    db.apply_events(["pushed/app"], 1, NOW, now=NOW + 1)
    assert db.claim_due(1, now=NOW + 1) == ["pushed/app"]
    assert not db.get("pushed/app").urgent, "claiming clears urgency"
    db.mark_pending("backfill/0", now=NOW + 2, urgent=True)  # already queued: now urgent
    assert db.claim_due(1, now=NOW + 2) == ["backfill/0"]


def test_older_database_gains_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE repositories (repository TEXT PRIMARY KEY, state TEXT NOT NULL,"
        " retry_count INTEGER NOT NULL DEFAULT 0, retry_at REAL, last_sync_failure TEXT,"
        " last_synced_at REAL, last_checked_at REAL, checksum TEXT,"
        " resync_requested INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,"
        " updated_at REAL NOT NULL)"
    )
    old.execute(
        "INSERT INTO repositories (repository, state, created_at, updated_at)"
        " VALUES ('kept', 'synced', 1, 1)"
    )
    old.commit()
    old.close()
    db = TrackingDB(path)
    assert db.get("kept").state == "synced"
    assert not db.get("kept").urgent
    db.close()


# The tables as the release before re-checks wrote them (its tracking_schema._SCHEMA).
_PREVIOUS_RELEASE = """
CREATE TABLE repositories (
    repository        TEXT PRIMARY KEY,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'started', 'synced', 'failed')),
    retry_count       INTEGER NOT NULL DEFAULT 0,
    retry_at          REAL,
    last_sync_failure TEXT,
    last_synced_at    REAL,
    last_checked_at   REAL,
    checksum          TEXT,
    resync_requested  INTEGER NOT NULL DEFAULT 0,
    urgent            INTEGER NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL
);
CREATE INDEX repositories_due ON repositories (state, retry_at);
CREATE INDEX repositories_failing ON repositories (repository)
    WHERE (state = 'failed' OR last_sync_failure <> '');
CREATE TABLE event_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL,
    last_event_at REAL,
    updated_at    REAL NOT NULL,
    log_id        TEXT
);
INSERT INTO repositories (repository, state, last_checked_at, created_at, updated_at)
    VALUES ('kept', 'synced', 1, 1, 1), ('queued', 'pending', NULL, 1, 1);
INSERT INTO event_cursor VALUES (1, 42, 1.0, 1.0, 'log-a');
"""


def test_the_previous_releases_database_keeps_working_and_gains_rechecks(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(_PREVIOUS_RELEASE)
    old.close()
    db = TrackingDB(path)
    try:
        assert (db.cursor(), db.cursor_log()) == (42, "log-a")
        assert db.counts() == {"pending": 1, "started": 0, "synced": 1, "failed": 0}
        assert db.rechecks_due() == 0
        assert db.backfill(["kept", "queued"], older_than=60).rechecks == ["kept"]
        assert (db.get("kept").state, db.rechecks_due()) == ("synced", 1)
    finally:
        db.close()
    TrackingDB(path).close()  # and opens again, migrated


def test_event_during_sync_is_not_lost(db: TrackingDB) -> None:
    db.mark_pending("group/app", now=NOW)
    db.claim_due(1, now=NOW)
    db.mark_pending("group/app", now=NOW + 0.5)  # a push lands while the sync runs
    assert db.get("group/app").resync_requested

    assert db.finish_success("group/app", "sha256:old", now=NOW + 1) == "pending"
    assert db.claim_due(1, now=NOW + 1) == ["group/app"]
    assert db.finish_success("group/app", "sha256:new", now=NOW + 2) == "synced"


def test_event_during_failed_sync_retries_at_once(db: TrackingDB) -> None:
    db.mark_pending("group/app", now=NOW)
    db.claim_due(1, now=NOW)
    db.mark_pending("group/app", now=NOW)
    db.finish_failure("group/app", "primary down", now=NOW)
    row = db.get("group/app")
    assert (row.state, row.retry_count) == ("pending", 1)


def test_event_on_failed_row_makes_it_due_and_keeps_retry_count(db: TrackingDB) -> None:
    db.mark_pending("group/app", now=NOW)
    db.claim_due(1, now=NOW)
    db.finish_failure("group/app", "boom", now=NOW)
    assert db.claim_due(1, now=NOW) == [], "not due before retry_at"
    db.mark_pending("group/app", now=NOW)
    assert db.claim_due(1, now=NOW) == ["group/app"]
    assert db.get("group/app").retry_count == 1


def test_failure_records_reason_and_backoff_grows_to_cap(tmp_path: Path) -> None:
    db = TrackingDB(tmp_path / "t.sqlite3", backoff=Backoff(1.0, 10.0, random=lambda: 1.0))
    db.mark_pending("r", now=NOW)
    delays = []
    for attempt in range(8):
        claimed = db.claim_due(1, now=NOW + 10_000 * attempt)
        assert claimed == ["r"]
        retry_at = db.finish_failure("r", f"failure {attempt}", now=NOW + 10_000 * attempt)
        delays.append(retry_at - (NOW + 10_000 * attempt))
    # jitter pinned at its top (x1.0): 1, 2, 4, 8, then the cap
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    row = db.get("r")
    assert (row.state, row.retry_count, row.last_sync_failure) == ("failed", 8, "failure 7")

    db.claim_due(1, now=row.retry_at)
    db.finish_success("r", None, now=row.retry_at)
    row = db.get("r")
    assert (row.retry_count, row.retry_at, row.last_sync_failure) == (0, None, None)
    db.close()


@pytest.mark.parametrize("retry_count", [0, 1, 3, 10, 200])
def test_backoff_jitter_stays_in_bounds(retry_count: int) -> None:
    backoff = Backoff(0.5, 30.0)
    ceiling = min(30.0, 0.5 * 2**retry_count)
    samples = [backoff.delay(retry_count) for _ in range(200)]
    assert all(ceiling * 0.5 <= delay <= ceiling for delay in samples)
    assert len(set(samples)) > 1, "jitter spreads retries"


def test_stale_started_rows_recover(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    first = TrackingDB(path)
    first.mark_many_pending(["a", "b"], now=NOW)
    first.claim_due(1, now=NOW)
    # The worker dies here: no finish_*; the process simply goes away.
    del first

    second = TrackingDB(path)
    assert second.recover_stale_started(now=NOW + 5) == ["a"]
    assert second.counts()["started"] == 0
    assert sorted(second.claim_due(10, now=NOW + 5)) == ["a", "b"]
    second.close()


def test_cursor_persists_with_the_rows_it_marked(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    db = TrackingDB(path)
    assert db.cursor() == 0
    db.apply_events(["group/app", "group/app", "group/base"], 7, NOW, now=NOW)
    db.apply_events([], 9, None, now=NOW)  # a page of events we ignore still moves the cursor
    db.close()

    reopened = TrackingDB(path)
    assert reopened.cursor() == 9
    assert reopened.last_event_at() == NOW, "an event without a time keeps the last one"
    assert reopened.counts()["pending"] == 2
    reopened.close()


def test_failed_apply_events_moves_neither_cursor_nor_rows(db: TrackingDB) -> None:
    class Boom(Exception):
        pass

    def names():
        yield "group/app"
        raise Boom

    with pytest.raises(Boom):
        db.apply_events(names(), 3, NOW)
    assert db.cursor() == 0
    assert db.rows() == []


def test_backfill_queues_what_is_not_replicated_and_marks_stale_rows_for_a_recheck(
    db: TrackingDB,
) -> None:
    """Issue 25 #16: backfill marked every synced row not checked for an interval pending,
    so with 1,228 repositories in sync `geo.status` swung between "synced 760, pending 462"
    and "synced 378, pending 846". A re-check is due, the row stays synced."""
    db.mark_many_pending(["fresh", "stale", "failed", "queued"], now=NOW)
    db.claim_due(10, now=NOW)
    db.finish_success("fresh", "x", now=NOW + 90)
    db.finish_success("stale", "x", now=NOW)
    db.finish_failure("failed", "boom", now=NOW)
    db.mark_pending("queued", now=NOW)  # an event during its sync: on its way already
    catalog = ["fresh", "stale", "failed", "queued", "new"]

    found = db.backfill(catalog, older_than=60, now=NOW + 100)

    assert (found.queued, found.rechecks) == (["failed", "new"], ["stale"])
    assert db.get("stale").state == "synced"
    assert db.counts() == {"pending": 2, "started": 1, "synced": 2, "failed": 0}
    assert (db.rechecks_due(), db.repositories_due_for_recheck()) == (1, ["stale"])
    for query in ("SELECT COUNT(*)", "SELECT repository"):
        plan = db._read(f"EXPLAIN QUERY PLAN {query} FROM repositories WHERE {RECHECK_DUE}")
        assert any("repositories_recheck_due" in row["detail"] for row in plan), plan


def test_a_verification_or_a_sync_settles_a_due_recheck(db: TrackingDB) -> None:
    db.start(["checked", "resynced"], now=NOW)
    for name in ("checked", "resynced"):
        db.finish_success(name, "x", now=NOW)
    assert db.backfill(["checked", "resynced"], older_than=60, now=NOW + 100).rechecks == [
        "checked",
        "resynced",
    ]
    db.mark_checked("checked", "x", now=NOW + 101)
    db.mark_pending("resynced", now=NOW + 101)  # a re-check that found a difference
    assert db.get("resynced").state == "pending"
    assert db.rechecks_due() == 0, "a pending row is counted as pending, not twice"
    db.claim_due(1, now=NOW + 102)
    db.finish_success("resynced", None, now=NOW + 103)
    assert db.rechecks_due() == 0
    assert db.backfill(["checked", "resynced"], older_than=60, now=NOW + 110).rechecks == []


def test_mark_checked_keeps_backfill_away(db: TrackingDB) -> None:
    db.mark_pending("r", now=NOW)
    db.claim_due(1, now=NOW)
    db.finish_success("r", "old", now=NOW)
    db.mark_checked("r", "new", now=NOW + 100)
    assert db.backfill(["r"], older_than=60, now=NOW + 110).rechecks == []
    assert db.get("r").checksum == "new"


def test_start_claims_named_repositories(db: TrackingDB) -> None:
    db.mark_pending("known", now=NOW)
    db.start(["known", "unknown"], now=NOW)
    assert db.counts()["started"] == 2


def test_failing_rows_are_what_geo_check_names_and_come_from_their_index(
    db: TrackingDB,
) -> None:
    """`failing_rows` (the status JSON's rows) keeps `sync_failures.failing`'s contract."""
    for name in ("a/failed", "a/retried", "a/synced", "a/new"):
        db.mark_pending(name)
    assert sorted(db.claim_due(4)) == ["a/failed", "a/new", "a/retried", "a/synced"]
    db.finish_failure("a/failed", "connection refused")
    db.finish_failure("a/retried", "timeout")
    db.mark_pending("a/retried")
    db.finish_success("a/synced", "sha256:" + "1" * 64)
    db.mark_pending("a/new")

    failing = [row.repository for row in db.failing_rows()]
    assert failing == ["a/failed", "a/retried"]
    assert failing == [row.repository for row in sync_failures.failing(db.rows())]
    plan = db._read(f"EXPLAIN QUERY PLAN SELECT * FROM repositories WHERE {FAILING}")
    assert any("repositories_failing" in row["detail"] for row in plan), [dict(r) for r in plan]


def test_remove(db: TrackingDB) -> None:
    db.mark_pending("gone", now=NOW)
    db.remove("gone")
    assert db.get("gone") is None


_OPEN_SNIPPET = """
import sys
from pathlib import Path
from gdk_geo.secondary.repository_index import RepositoryIndex
from gdk_geo.secondary.tracking import TrackingDatabaseError, TrackingDB
try:
    TrackingDB(Path(sys.argv[1]))
except TrackingDatabaseError as exc:
    print(exc.render())
    sys.exit(3)
"""


def _without_root_override() -> list[str]:
    """A command prefix that makes root respect file permissions (nothing for other users)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file read-only to us")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_read_only_database_is_a_clear_error() -> None:
    """A read-only file in a read-only directory: a clear error, and the file is untouched.

    Root ignores file modes, so when the suite runs as root the open happens in a child
    whose capability bounding set lacks CAP_DAC_OVERRIDE (root then obeys modes like anyone).
    """
    directory = Path(tempfile.mkdtemp(prefix="gdkgeo-ro-"))
    path = directory / "tracking.sqlite3"
    try:
        db = TrackingDB(path)
        db.mark_pending("r", now=NOW)
        db.close()
        before = path.read_bytes()
        path.chmod(0o444)
        directory.chmod(0o555)  # no -wal/-shm files can be created either
        child = subprocess.run(
            [*_without_root_override(), sys.executable, "-c", _OPEN_SNIPPET, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert child.returncode == 3, child.stderr
        assert "cannot be used" in child.stdout
        assert "writable" in child.stdout
        assert path.read_bytes() == before, "a failed open leaves the file untouched"
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Path:
    """A 192 KiB tmpfs, so "disk full" is real; skipped where mounting is not allowed."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip()})")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_full_disk_is_a_clear_error_and_keeps_committed_rows(tiny_filesystem: Path) -> None:
    path = tiny_filesystem / "tracking.sqlite3"
    db = TrackingDB(path)
    written = 0
    with pytest.raises(TrackingDatabaseError) as caught:
        for written in range(100_000):
            db.mark_pending(f"group/{written:06d}/" + "x" * 2000, now=NOW)
    assert "free disk space" in caught.value.fix
    db.close()

    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert check.execute("SELECT COUNT(*) FROM repositories").fetchone() == (written,)
    check.close()


def test_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "geo"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(TrackingDatabaseError) as caught:
        TrackingDB(blocker / "tracking.sqlite3")
    assert str(blocker) in caught.value.render()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TrackingDatabaseError, match="not a database"):
        TrackingDB(path)


def test_the_verification_table_fails_with_the_tracking_tables_fixes(
    tmp_path: Path, tiny_filesystem: Path
) -> None:
    """The verification table (`RepositoryIndex`) said "check (permissions, free space)"
    for a file that is not a database, and "make it writable" for a full disk."""
    garbage = tmp_path / "t.sqlite3"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TrackingDatabaseError) as caught:
        RepositoryIndex(garbage)
    assert "move" in caught.value.fix and "rebuilds it" in caught.value.fix

    path = tiny_filesystem / "tracking.sqlite3"
    db, index = TrackingDB(path), RepositoryIndex(path)
    try:
        with pytest.raises(TrackingDatabaseError) as caught:
            for n in range(100_000):
                index.record(f"group/{n:06d}/" + "x" * 2000, ok=False, failure="y" * 900)
        assert "free disk space" in caught.value.fix
    finally:
        index.close()
        db.close()
