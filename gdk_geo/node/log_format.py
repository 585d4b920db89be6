"""The Geo services' log line format: `2024-05-01 15:30:00,250+0530 INFO name: message`.

`logging`'s default asctime is local time without a zone, so a reader in another time
zone (`TZ=Asia/Tokyo invoke geo.logs`) placed every Geo line hours away from the registry's
UTC lines. Each line now carries its UTC offset, which `gdk_geo.runtime.logs` reads; lines written
by an older release, without one, are still read as local time.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import IO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ZonedFormatter(logging.Formatter):
    """A formatter whose asctime is local time with its UTC offset, to the millisecond."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created).astimezone()
        return f"{moment:%Y-%m-%d %H:%M:%S},{int(record.msecs):03d}{moment:%z}"


def handler(stream: IO[str]) -> logging.Handler:
    """A stream handler writing the Geo services' format (for `logging.basicConfig`)."""
    found = logging.StreamHandler(stream)
    found.setFormatter(ZonedFormatter(FORMAT))
    return found
