"""runtime.logs: Docker's and the Geo logs' timestamps, one time line, following a file.

The Geo logs write local times with their offset; a conversion mistake would put every
registry line hours away from where it belongs, so the times here are in UTC+5:30 (a POSIX
TZ string, so no tzdata is needed). `invoke geo.logs` on a real project is
tests/e2e/test_logs.py.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import FAR_FROM_UTC

from gdk_geo.node import log_format
from gdk_geo.runtime import logs


def test_docker_timestamps_keep_nanoseconds_and_trimmed_zeros() -> None:
    whole = logs.docker_timestamp("2024-05-01T10:00:00Z")
    assert logs.docker_timestamp("2024-05-01T10:00:00.5Z") == whole + 500_000_000
    assert logs.docker_timestamp("2024-05-01T10:00:00.000000001Z") == whole + 1
    assert logs.docker_timestamp("not-a-time") is None


def test_geo_timestamps_are_local_time(far_timezone: None) -> None:
    geo = logs.geo_timestamp("2024-05-01 15:30:00,250 INFO gdk_geo.worker: synced")
    assert geo == logs.docker_timestamp("2024-05-01T10:00:00.25Z")  # 15:30 IST is 10:00 UTC
    assert logs.local_time(geo) == "2024-05-01 15:30:00,250+0530"
    assert logs.geo_timestamp("Traceback (most recent call last):") is None


def test_geo_lines_written_in_one_zone_are_placed_right_in_another() -> None:
    """Issue 13 #19: a service started in one time zone and `TZ=Asia/Tokyo invoke geo.logs`
    read the zoneless local times as Tokyo's, hours from the registry's UTC lines."""
    record = logging.LogRecord("gdk_geo.worker", logging.INFO, __file__, 1, "synced", (), None)
    record.created, record.msecs = 1714557600.25, 250.0  # 2024-05-01T10:00:00.25Z
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", FAR_FROM_UTC)
        time.tzset()
        line = log_format.handler(sys.stderr).format(record)
        patch.setenv("TZ", "JST-9")  # Asia/Tokyo as a POSIX TZ string (no tzdata needed)
        time.tzset()
        at = logs.geo_timestamp(line)
        shown = logs.local_time(at or 0)
    time.tzset()
    assert line.startswith("2024-05-01 15:30:00,250+0530 INFO gdk_geo.worker: synced")
    assert at == logs.docker_timestamp("2024-05-01T10:00:00.25Z")
    assert shown == "2024-05-01 19:00:00,250+0900"


def test_history_merges_by_time_and_keeps_continuation_lines(tmp_path: Path) -> None:
    first = tmp_path / "a.log"
    first.write_text(
        "2024-05-01 10:00:00,100 ERROR one\nTraceback (most recent call last):\n"
        "2024-05-01 10:00:00,300 INFO three\n"
    )
    second = tmp_path / "b.log"
    second.write_text("2024-05-01 10:00:00,200 INFO two\n")
    merged = logs.history([logs.GeoLog("primary", first), logs.GeoLog("secondary", second)])
    assert [line.render() for line in merged] == [
        "primary geo        | 2024-05-01 10:00:00,100 ERROR one",
        "primary geo        | Traceback (most recent call last):",
        "secondary geo      | 2024-05-01 10:00:00,200 INFO two",
        "primary geo        | 2024-05-01 10:00:00,300 INFO three",
    ]


def test_following_a_file_emits_appended_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "geo.log"
    path.write_text("2024-05-01 10:00:00,100 INFO old\n")
    source = logs.GeoLog("primary", path)
    assert len(source.history()) == 1
    emitted: list[str] = []
    stop = threading.Event()
    follower = threading.Thread(
        target=source.follow, args=(lambda line: emitted.append(line.text), stop)
    )
    follower.start()
    with path.open("a") as log:
        log.write("2024-05-01 10:00:01,000 INFO new\n2024-05-01 10:00:02,000 INFO half")
    deadline = time.monotonic() + 10
    while not emitted and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    follower.join()
    assert emitted == ["2024-05-01 10:00:01,000 INFO new"]  # the half line waits for its end
