"""Registry notifications → Geo event log entries: which events matter, and which to trust.

Distribution delivers a JSON envelope of events. `parse_envelope` refuses a body that is not
one; `triage` decides, event by event, to record, ignore or reject, with the names and
references checked against the one distribution grammar (`gdk_geo.registry.reference`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gdk_geo.primary.eventlog import RegistryEvent
from gdk_geo.registry.reference import is_digest, is_manifest_media_type, is_repository, is_tag

NOTIFICATION_CONTENT_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.events.v1+json",
        "application/vnd.docker.distribution.events.v2+json",
        "application/json",
    }
)

_EVENT_ID = re.compile(r"[\x21-\x7e]{1,255}")


class BadNotification(Exception):
    """The body is not a notification envelope; the reason is safe to show the sender."""


@dataclass(frozen=True)
class Triage:
    """What to do with one event of a notification, and why when it is not recorded."""

    outcome: Literal["record", "ignore", "reject"]
    event: RegistryEvent | None = None
    reason: str = ""


def parse_envelope(body: bytes) -> list[Any]:
    """The `events` list of a notification body, or `BadNotification` saying what is wrong.

    `json` raises `RecursionError` on deeply nested input; that is the sender's fault, not
    ours, so it is a 400 like any other malformed body.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadNotification("body is not UTF-8") from None
    try:
        envelope = json.loads(text)
    except RecursionError:
        raise BadNotification("body is nested too deeply") from None
    except ValueError:
        raise BadNotification("body is not valid JSON") from None
    if not isinstance(envelope, dict):
        raise BadNotification("body is not a JSON object")
    events = envelope.get("events")
    if not isinstance(events, list):
        raise BadNotification("body has no `events` list")
    return events


def triage(raw: Any) -> Triage:
    """Decide whether one Distribution event goes into the Geo event log.

    Only manifest pushes and deletes change what a secondary must hold: a push or delete
    whose target has a tag or a manifest media type. Distribution's delete events carry no
    media type at all, for manifests, tags and repositories alike (and for blobs, which we
    cannot tell apart), so a delete without one is recorded: the secondary answers any event
    by comparing the repository with the primary, so a stray one costs a check, while a
    missed one leaves a deleted image behind until the next backfill.
    Pulls, mounts and blob events are ignored. Anything we would record but cannot trust
    (no id, a name outside the registry's grammar) is rejected. No URL in the event is
    ever followed: the secondary talks to the configured primary registry only.
    """
    if not isinstance(raw, dict):
        return Triage("reject", reason="event is not an object")
    action = raw.get("action")
    if action not in ("push", "delete"):
        return Triage("ignore") if isinstance(action, str) else _reject("no action")
    target = raw.get("target")
    if not isinstance(target, dict):
        return _reject("no target")
    try:
        repository = _optional_text(target, "repository")
        tag = _optional_text(target, "tag")
        digest = _optional_text(target, "digest")
        media_type = _optional_text(target, "mediaType")
    except TypeError as exc:
        return _reject(str(exc))
    if not _concerns_manifest(action, tag, media_type):
        return Triage("ignore")
    return _checked_event(raw.get("id"), action, repository, tag, digest)


def _optional_text(target: dict[str, Any], key: str) -> str | None:
    """A target field as text; absent, null and "" all mean "not given" (Go's omitempty)."""
    value = target.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"target.{key} is not a string")
    return value


def _concerns_manifest(action: str, tag: str | None, media_type: str | None) -> bool:
    if tag is not None:
        return True
    if media_type is None:
        return action == "delete"
    return is_manifest_media_type(media_type)


def _checked_event(
    event_id: Any, action: str, repository: str | None, tag: str | None, digest: str | None
) -> Triage:
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        return _reject("no usable event id")
    if repository is None or not is_repository(repository):
        return _reject(f"repository name not valid: {_shown(repository)}")
    if tag is not None and not is_tag(tag):
        return _reject(f"tag not valid: {_shown(tag)}")
    if digest is not None and not is_digest(digest):
        return _reject(f"digest not valid: {_shown(digest)}")
    logged_action = "updated" if action == "push" else "deleted"
    event = RegistryEvent(event_id, logged_action, repository, tag, digest)
    return Triage("record", event=event)


def _reject(reason: str) -> Triage:
    return Triage("reject", reason=reason)


def _shown(value: str | None) -> str:
    """A hostile value made safe for a log line: quoted, escaped, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def summary(triaged: Sequence[Triage], recorded: int) -> dict[str, int]:
    """The answer to the registry. Repeats of an already recorded event count as ignored,
    so that received = recorded + ignored + rejected."""
    rejected = sum(1 for t in triaged if t.outcome == "reject")
    return {
        "received": len(triaged),
        "recorded": recorded,
        "ignored": len(triaged) - rejected - recorded,
        "rejected": rejected,
    }
