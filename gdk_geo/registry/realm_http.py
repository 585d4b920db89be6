"""How both Geo services' HTTP server answers a request head too large to read: 431.

Each node's Geo service serves the realm (`/jwt/auth`) under uvicorn with h11. h11 gives up
on a request line and headers larger than its buffer limit only while they are incomplete
(a head that arrives in one read passes whatever its size), and uvicorn then writes a 400
and closes the socket while the client is still sending: the kernel resets a socket closed
with unread data, so a client sending a 1 MB Authorization header saw a reset instead of
the status, from both services (issue #25.8).

`HeadLimitProtocol` measures each request head as it arrives and answers one over
`HEAD_LIMIT` with 431 (Request Header Fields Too Large, RFC 6585, the status h11 suggests);
it then closes only its sending side and reads and drops what the client still sends until
the client closes or a bound is reached, so the client reads the status. Both services pass
`server_options()` to `uvicorn.Config`, which also pins the h11 parser: left to
`http="auto"`, uvicorn would switch to httptools, with other limits and answers, wherever
that package happens to be installed.
"""

from __future__ import annotations

import asyncio
import http
import json
import re
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_LIMIT = 16 * 1024  # request line and headers, in bytes; a real client's are under 2 KiB
DRAIN_BYTES = 8 * 1024 * 1024  # read to the end and dropped, at most, before closing anyway
DRAIN_SECONDS = 10.0  # a client that neither stops sending nor closes is cut off after this
_HEAD_END = re.compile(b"\n\r?\n")  # where h11 ends a head


class HeadLimitProtocol(H11Protocol):
    """uvicorn's h11 protocol with a fixed head limit, refusing without a reset."""

    _draining = False
    _drained = 0
    _drain_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._draining:
            self._drop(len(data))
        elif self.conn.their_state is h11.IDLE and _head_over_limit(
            self.conn.trailing_data[0] + data
        ):
            self._refuse(431, f"the request line and headers are over {HEAD_LIMIT // 1024} KiB")
        else:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to whatever h11 cannot parse, sent the same way as the 431."""
        self._refuse(400, "the request is not valid HTTP/1.1")

    def _refuse(self, status: int, message: str) -> None:
        """The status with the realm's error body, then `_drain`. The request is not
        logged: its head may hold a password."""
        self.logger.warning("refused a request: %s (HTTP %d)", message, status)
        body = json.dumps({"errors": [{"code": "INVALID_REQUEST", "message": message}]}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        reason = http.HTTPStatus(status).phrase
        for event in (
            h11.Response(status_code=status, headers=headers, reason=reason),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self._drain()

    def _drain(self) -> None:
        """Close our side only, then drop what the client still sends until it closes (the
        transport then closes: `eof_received` returns None), `DRAIN_BYTES` or
        `DRAIN_SECONDS`. Closing at once would reset the connection over unread bytes."""
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self._draining = True
        self.transport.write_eof()
        self.transport.resume_reading()
        self._drain_timer = self.loop.call_later(DRAIN_SECONDS, self.transport.close)

    def _drop(self, count: int) -> None:
        self._drained += count
        if self._drained > DRAIN_BYTES:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        super().connection_lost(exc)


def _head_over_limit(received: bytes) -> bool:
    """True when the head that starts `received` does not end within `HEAD_LIMIT` bytes."""
    if len(received) <= HEAD_LIMIT:
        return False
    return _HEAD_END.search(received, 0, HEAD_LIMIT) is None


def server_options() -> dict[str, Any]:
    """The `uvicorn.Config` options both Geo services share (h11's own limit, the same,
    stays as a backstop)."""
    return {"http": HeadLimitProtocol, "h11_max_incomplete_event_size": HEAD_LIMIT}
