"""The CLI's side of the worker API: start a pass in the running worker, stream its progress.

`invoke geo.sync` and `geo.verify` hand their work to the secondary's worker, which has
the sync engine loaded, its connections open and its blob locations warm, instead of
importing and starting a second engine beside it. This module is all those tasks import
when the worker answers, so it uses the standard library's `http.client`: httpx alone
takes longer to import than the whole budget of a task (bench/RESULTS.md).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

from gdk_geo.node.settings import SecondaryWorkerSettings

# Seconds for the connect and for each read until the progress stream starts: a worker
# that does not answer by then counts as down. Each is one round trip (the worker answers
# 202 before the pass does anything), 0.3 s to a worker across a 300 ms WAN; the stream
# itself has no timeout at all, a pass may be quiet for a whole sync (`_progress`).
CONNECT_TIMEOUT = 3.0

Event = dict[str, Any]


class WorkerUnavailable(Exception):
    """The worker cannot take the pass (not running, refused the token, too old); why."""


class PassRefused(Exception):
    """The worker refused what was asked (a name that is not a repository name); why."""


class WorkerStopped(Exception):
    """The worker took the pass, then stopped answering (killed, or the connection dropped
    mid-stream); why. The pass is the worker's: it is not run a second time here."""


def _connection(settings: SecondaryWorkerSettings) -> http.client.HTTPConnection:
    host = settings.listen_address
    if host in ("0.0.0.0", "::"):
        host = settings.hostname  # a wildcard listener is reached at the node's own name
    return http.client.HTTPConnection(host, settings.port, timeout=CONNECT_TIMEOUT)


def _headers(settings: SecondaryWorkerSettings) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {settings.node_token}",
        "Content-Type": "application/json",
    }


def start_pass(
    settings: SecondaryWorkerSettings, kind: str, selection: dict[str, Any]
) -> Iterator[Event]:
    """Start a `kind` ("resync" or "reverify") pass and yield its events until `done`.

    Raises `WorkerUnavailable` before the first event when the worker cannot take it, so
    the caller can run the pass in-process instead. Once started, the pass belongs to the
    worker: a dropped stream, however it breaks (a reset, a cut chunk, half a line), is a
    `WorkerStopped`, not a reason to run it a second time.
    """
    conn = _connection(settings)
    try:
        body = json.dumps(selection).encode()
        url = f"/api/v4/geo/container_repositories/{kind}"
        try:
            conn.request("POST", url, body=body, headers=_headers(settings))
            response = conn.getresponse()
            reply = response.read()
        except OSError as exc:
            raise WorkerUnavailable(_why(exc, settings)) from None
        if response.status == 400:
            raise PassRefused(_message(reply))
        if response.status != 202:
            raise WorkerUnavailable(_refusal(response.status, reply))
        yield from _progress(conn, settings, json.loads(reply)["events_url"])
    finally:
        conn.close()


def _progress(
    conn: http.client.HTTPConnection, settings: SecondaryWorkerSettings, events_url: str
) -> Iterator[Event]:
    """The events of a pass the worker took, until `done`; `WorkerStopped` when the stream
    ends or breaks before it."""
    try:
        conn.request("GET", events_url, headers=_headers(settings))
        stream = conn.getresponse()
        if stream.status != 200:
            raise WorkerUnavailable(_refusal(stream.status, stream.read()))
        if conn.sock is not None:
            conn.sock.settimeout(None)  # a pass may be quiet for as long as one sync takes
        for line in stream:
            if line.strip():
                event = json.loads(line)
                yield event
                if event.get("type") == "done":
                    return
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise WorkerStopped(_broken(exc)) from None
    raise WorkerStopped("it closed the progress stream before the pass ended")


def _broken(exc: Exception) -> str:
    """How the stream broke, in words (an `IncompleteRead` prints as bytes otherwise)."""
    if isinstance(exc, http.client.IncompleteRead):
        return "the progress stream was cut off in the middle of a chunk"
    if isinstance(exc, ValueError):
        return "the progress stream ended in the middle of an event"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _why(exc: OSError, settings: SecondaryWorkerSettings) -> str:
    where = f"{settings.listen_address}:{settings.port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens on {where}"
    return f"{where}: {exc.strerror or exc}"


def _message(reply: bytes) -> str:
    try:
        return str(json.loads(reply).get("message", ""))
    except (ValueError, AttributeError):
        return ""


def _refusal(status: int, reply: bytes) -> str:
    message = _message(reply)
    if status == 401:
        return "it refused the node token (restart it after `invoke geo.reconfigure`)"
    if status == 404:
        return "it has no worker API (restart it with `invoke geo.restart`)"
    return f"it answered HTTP {status} {message}".rstrip()
