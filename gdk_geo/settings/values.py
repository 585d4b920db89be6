"""What each gdk.yml setting accepts: one check per kind of value.

A check returns None for a good value, else what was expected, in words: `config.py`
puts those words after "got ..., expected", and asks a check for them with a value every
check rejects. The limits are the registry's own (Go's ints and durations), so a value
that passes here is one the registry can start with.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], str | None]  # returns what was expected when the value is invalid

_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
# An image reference: a lowercase name, then parts each led by one of `._-/:@`. The first
# part may start with `._-`, the rest only with `/:@`: written as any part after any
# separator (`([._/:@-][A-Za-z0-9_.-]+)*`), a separator that is also a part's character
# could end one part or lead the next, and a refused `a-----…-!` was tried every way, 1.65
# times as long per dash (days at 60 dashes). This form accepts the same references.
_IMAGE = re.compile(r"^[a-z0-9]+(?:[._-][A-Za-z0-9_.-]+)?(?:[/:@][A-Za-z0-9_.-]+)*$")
# A container prefix and a node name make the container's name, `<prefix>-<node>-registry`
# (runtime/containers.py). Docker wants a name that starts with a letter or digit, then
# letters, digits, '.', '_' or '-' (moby's RestrictedNamePattern), and sets no length;
# lowercase only and MAX_NAME are ours: with them `<prefix>-secondary-registry` stays within
# 60 characters, inside the 63 of a DNS label, so the name also serves as a host name.
MAX_NAME = 41
_NAME = re.compile(rf"^[a-z0-9][a-z0-9_.-]{{0,{MAX_NAME - 1}}}$")
NAME_RULES = (
    f"1 to {MAX_NAME} lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
)
_SECRET = re.compile(r"^[\x21-\x7e]{16,256}$")


def port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "a TCP port number from 1 to 65535"


# The registry parses counts as Go ints and durations as Go's int64 nanoseconds; a value past
# those is not a setting the registry can start with.
MAX_COUNT = 2**31 - 1
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9  # Go's longest duration, about 2562047h


def positive(value: int) -> str | None:
    ok = 1 <= value <= MAX_COUNT
    return None if ok else f"a whole number from 1 to {MAX_COUNT}"


def duration(value: str) -> str | None:
    ok = _DURATION.match(value) and 0 < duration_seconds(value) <= MAX_DURATION_SECONDS
    expected = 'a positive duration such as "500ms", "1s", "2m" or "1h30m" (at most 2562047h)'
    return None if ok else expected


def hostname(value: str) -> str | None:
    return None if _HOSTNAME.match(value) else "a host name such as localhost or gdk.test"


def ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "an IP address such as 127.0.0.1"
    return None


_DOCKER_HOST = re.compile(
    r"^(unix://(/[^\s]*)|tcp://[^\s/]+:\d+|ssh://[^\s/]+(:\d+)?|npipe://[^\s]+)$"
)


def docker_host(value: str) -> str | None:
    if value == "" or _DOCKER_HOST.match(value):
        return None
    return (
        "empty (the CLI's own engine) or an engine as DOCKER_HOST spells it: "
        "unix:///run/docker.sock, tcp://198.18.1.2:2376 or ssh://user@host"
    )


def node_address(value: str) -> str | None:
    if value == "" or hostname(value) is None or ip_address(value) is None:
        return None
    return "empty (`hostname`) or an IP address or host name such as 198.18.1.2"


def image_name(value: str) -> str | None:
    return None if _IMAGE.match(value) else "an image reference such as registry:2"


def container_prefix(value: str) -> str | None:
    named = "containers are named <prefix>-<node>-registry"
    return None if _NAME.match(value) else f"{NAME_RULES}, such as gdk-geo ({named})"


def secret(value: str) -> str | None:
    if value == "" or _SECRET.match(value):
        return None
    return "empty (generate one) or 16 to 256 printable characters without spaces"


def username(value: str) -> str | None:
    ok = re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$", value)
    return None if ok else "a user name of letters, digits, '.', '_' or '-', such as root"


def log_level(value: str) -> str | None:
    ok = value in ("error", "warn", "info", "debug")
    return None if ok else "one of error, warn, info, debug"


def url_or_empty(value: str) -> str | None:
    ok = value == "" or re.match(r"^https?://[^\s/]+(:\d+)?/?$", value)
    return None if ok else "empty (derive it) or a URL such as https://localhost:5000"


def duration_seconds(value: str) -> float:
    """Convert a Go duration ("500ms", "1m30s") into seconds for our own services."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(
        float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    )


def node_name(value: str) -> str | None:
    ok = value == "" or _NAME.match(value)
    return None if ok else "empty (the first node) or a node name of `geo.nodes`, such as dc2"


def masked(value: str) -> str:
    """How a secret may appear in output: its first four characters and a mark."""
    return f"{value[:4]}…(hidden)" if value else "(empty)"
