"""The relay's spec file: what the CLI writes is what the relay reads, and a bad file is
refused with the file named (a relay keeps its link as it was on a reload that fails)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gdk_geo.errors import GdkGeoError
from gdk_geo.link.shaping import Shaping
from gdk_geo.link.spec import LinkSpec, Route, read_spec, write_spec

ROUTE = Route(("127.0.0.1", 15000), ("127.0.0.1", 5000))


def test_what_is_written_is_read(tmp_path: Path) -> None:
    spec = LinkSpec(
        (ROUTE, Route(("127.0.0.1", 15001), ("localhost", 3001))),
        Shaping(latency_ms=80, jitter_ms=10, loss_percent=1, rate_bits=50_000_000),
    )
    path = tmp_path / "link" / "spec.json"

    write_spec(path, spec)

    assert read_spec(path) == spec
    assert json.loads(path.read_text())["routes"][0] == {
        "listen": ["127.0.0.1", 15000],
        "target": ["127.0.0.1", 5000],
    }


def test_shaping_may_be_left_out(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"routes": [ROUTE.to_json()]}))

    assert read_spec(path) == LinkSpec((ROUTE,), Shaping())


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("{", "not JSON"),
        ("[]", "list of routes"),
        ('{"routes": [], "shape": {}}', "unknown link spec keys: shape"),
        ('{"routes": [{"listen": ["127.0.0.1", 15000]}]}', "a route is"),
        ('{"routes": [{"listen": ["127.0.0.1", 0], "target": ["h", 1]}]}', "listen must be"),
        ('{"routes": [{"listen": ["127.0.0.1", 1], "target": "h:1"}]}', "target must be"),
        ('{"routes": [], "shaping": {"loss_percent": 200}}', "loss_percent"),
    ],
)
def test_a_bad_file_is_refused_naming_it(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(text)

    with pytest.raises(GdkGeoError) as raised:
        read_spec(path)

    assert what in raised.value.what
    assert raised.value.where == str(path)


def test_two_routes_cannot_listen_on_one_address() -> None:
    with pytest.raises(GdkGeoError, match=r"listens twice on 127\.0\.0\.1:15000"):
        LinkSpec((ROUTE, Route(ROUTE.listen, ("127.0.0.1", 5001))))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GdkGeoError) as raised:
        read_spec(tmp_path / "absent.json")
    assert raised.value.where == str(tmp_path / "absent.json")
