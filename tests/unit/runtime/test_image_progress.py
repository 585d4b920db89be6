"""The registry image step reports progress: bytes over all layers for a pull, a message else.

No engine needed: a stand-in client replays the stream Docker sends while pulling.
"""

from __future__ import annotations

from pathlib import Path

import docker.errors

from gdk_geo.runtime.image import Step, ensure_registry_image, messages

PULL_STREAM = [
    {"status": "Pulling from library/registry", "id": "2"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
    {"status": "Downloading", "progressDetail": {"current": 100, "total": 1000}, "id": "aaa"},
    {"status": "Downloading", "progressDetail": {"current": 50, "total": 500}, "id": "bbb"},
    {"status": "Downloading", "progressDetail": {"current": 1000, "total": 1000}, "id": "aaa"},
    {"status": "Download complete", "progressDetail": {}, "id": "bbb"},
    {"status": "Extracting", "progressDetail": {"current": 10, "total": 1000}, "id": "aaa"},
    {"status": "Pull complete", "progressDetail": {}, "id": "aaa"},
    {"status": "Digest: sha256:0123"},
]


class _Images:
    def __init__(self) -> None:
        self.present: set[str] = set()

    def get(self, name: str) -> object:
        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return object()


class _Api:
    def __init__(self, images: _Images) -> None:
        self.images = images

    def pull(self, repository: str, tag: str, stream: bool, decode: bool):
        yield from PULL_STREAM
        self.images.present.add(f"{repository}:{tag}")


class _Client:
    def __init__(self) -> None:
        self.images = _Images()
        self.api = _Api(self.images)


def test_a_pull_reports_bytes_over_all_layers() -> None:
    steps: list[Step] = []
    result = ensure_registry_image(_Client(), "registry:2", Path("/nonexistent"), steps.append)
    assert result.how == "pulled"
    assert steps[0] == Step("pulling registry:2")
    measured = [(s.done, s.total) for s in steps if s.total]
    assert measured == [(100, 1000), (150, 1500), (1050, 1500), (1500, 1500), (1500, 1500)]
    assert {s.message for s in steps} == {"pulling registry:2"}


def test_messages_prints_each_new_message_once() -> None:
    said: list[str] = []
    report = messages(said.append)
    for step in (Step("pulling", 1, 10), Step("pulling", 5, 10), Step("building"), Step("x")):
        report(step)
    assert said == ["pulling", "building", "x"]
