"""The relay's spec file: where it listens, where each listener leads, how the link is shaped.

The CLI writes it (atomically, so the relay never reads half a file) and the relay reads it
at start, on SIGHUP and whenever its mtime changes: the file is the one channel between
them, so a changed link is a written file, and a relay restarted later reads the same link.

    {
      "routes": [
        {"listen": ["127.0.0.1", 15000], "target": ["127.0.0.1", 5000]}
      ],
      "shaping": {"latency_ms": 80, "jitter_ms": 10, "loss_percent": 0,
                  "rate_bits": 50000000, "down": false}
    }

`shaping` may leave out any key (its default is a perfect link).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdk_geo.errors import GdkGeoError, clipped
from gdk_geo.fsutil import atomic_write
from gdk_geo.link.shaping import Shaping

Address = tuple[str, int]


@dataclass(frozen=True)
class Route:
    """One listener of the relay and the address each of its connections is relayed to."""

    listen: Address
    target: Address

    def to_json(self) -> dict[str, list[str | int]]:
        return {"listen": list(self.listen), "target": list(self.target)}


@dataclass(frozen=True)
class LinkSpec:
    """Everything the relay reads: its routes (distinct listen addresses) and the shaping
    every one of them shares (one link, one bandwidth)."""

    routes: tuple[Route, ...]
    shaping: Shaping = field(default_factory=Shaping)

    def __post_init__(self) -> None:
        listens = [route.listen for route in self.routes]
        doubled = sorted({f"{h}:{p}" for h, p in listens if listens.count((h, p)) > 1})
        if doubled:
            raise GdkGeoError(
                f"the link spec listens twice on {', '.join(doubled)}",
                fix="give each route its own listen address",
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "routes": [route.to_json() for route in self.routes],
            "shaping": self.shaping.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> LinkSpec:
        if not isinstance(data, dict) or not isinstance(data.get("routes"), list):
            raise GdkGeoError("a link spec is an object with a list of routes")
        unknown = sorted(str(key) for key in data if key not in ("routes", "shaping"))
        if unknown:
            raise GdkGeoError(f"unknown link spec keys: {', '.join(unknown)}")
        routes = tuple(_route(item) for item in data["routes"])
        return cls(routes, Shaping.from_json(data.get("shaping", {})))


def _address(value: object, what: str) -> Address:
    """[host, port] as the spec holds it."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    host, port = value if ok else ("", 0)  # type: ignore[misc]
    if not (isinstance(host, str) and host and isinstance(port, int) and 0 < port < 65536):
        raise GdkGeoError(
            f"a route's {what} must be [host, port], not {clipped(json.dumps(value))}",
            fix='write it as ["127.0.0.1", 15000]',
        )
    return host, port


def _route(item: object) -> Route:
    if not isinstance(item, dict) or set(item) != {"listen", "target"}:
        raise GdkGeoError(
            f"a route is {{'listen': [host, port], 'target': [host, port]}}, not "
            f"{clipped(json.dumps(item, default=str))}"
        )
    return Route(_address(item["listen"], "listen"), _address(item["target"], "target"))


def read_spec(path: Path) -> LinkSpec:
    """The spec in `path`, or a GdkGeoError saying what is wrong with the file."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise GdkGeoError(f"cannot read the link spec: {exc.strerror}", where=str(path)) from exc
    except ValueError as exc:
        raise GdkGeoError(f"the link spec is not JSON: {exc}", where=str(path)) from exc
    try:
        return LinkSpec.from_json(data)
    except GdkGeoError as exc:
        raise GdkGeoError(exc.what, where=str(path), fix=exc.fix) from exc


def write_spec(path: Path, spec: LinkSpec) -> None:
    """Write `spec` to `path` atomically: a running relay re-reads it within 0.2 s."""
    atomic_write(path, json.dumps(spec.to_json(), indent=2) + "\n")
