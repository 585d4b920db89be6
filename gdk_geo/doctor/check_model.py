"""What `geo.check` is made of: a check, the context it reads, and what it found.

A check is a small function from a `Context` to an `Outcome`, like GDK's `Diagnostic`
classes with their `success?` and `detail`; a `GdkGeoError` raised inside one is its
failure. The checks themselves are in `local_checks` and `live_checks`, declared in
`checks.CHECKS`.

A check declared `each_secondary` looks at one secondary: it runs once per secondary, each
time with a `Context` narrowed to that node (`Context.of`), and each result names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import docker
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import (
    PrimaryServiceSettings,
    SecondaryWorkerSettings,
    load_primary,
    load_secondary,
)
from gdk_geo.project import NodePaths, Project
from gdk_geo.runtime import containers
from gdk_geo.runtime.placement import Placement
from gdk_geo.settings import Settings
from gdk_geo.settings.topology import url

Status = Literal["passed", "failed", "skipped"]


AuthCheck = Callable[[PrimaryServiceSettings, SecondaryWorkerSettings], tuple[str | None, str]]


MARKS: dict[Status, str] = {"passed": "✓", "failed": "✗", "skipped": "-"}


@dataclass(frozen=True)
class Outcome:
    """What one check found: passed, failed or skipped, and the detail a user needs."""

    status: Status
    detail: str = ""
    fix: str = ""  # a fix for exactly what was found, instead of the declared one


def passed(detail: str = "") -> Outcome:
    return Outcome("passed", detail)


def failed(detail: str, fix: str = "") -> Outcome:
    return Outcome("failed", detail, fix)


def skipped(why: str) -> Outcome:
    return Outcome("skipped", why)


class Context:
    """What the checks share: the project, and settings and clients made once, on demand.

    Each property raises the `GdkGeoError` a task would (bad gdk.yml, no engine, a missing
    gitlab.yml); the check that asked fails with it, and the checks after it ask again.
    A context made by `of(name)` looks at secondary `name` and shares the rest with its
    parent, so gdk.yml is read and the engine reached once for every secondary.
    """

    def __init__(
        self, project: Project, secondary: str | None = None, parent: Context | None = None
    ) -> None:
        self.project = project
        self._secondary = secondary
        self._parent = parent

    def of(self, secondary: str) -> Context:
        """This context, looking at secondary `secondary` for the per-secondary checks."""
        return Context(self.project, secondary, self._parent or self)

    @cached_property
    def cfg(self) -> Settings:
        return self._parent.cfg if self._parent else self.project.load()

    @cached_property
    def client(self) -> docker.DockerClient:
        return self._parent.client if self._parent else containers.engine()

    @cached_property
    def place(self) -> Placement:
        """Each node on its engine: the checks of what a node runs ask its own engine."""
        return self._parent.place if self._parent else Placement(self.project, self.cfg)

    def node(self, name: str) -> NodePaths:
        return self.project.node(self.cfg, name)

    @property
    def primary_name(self) -> str:
        return self.cfg.primary_name

    @property
    def secondary_name(self) -> str:
        """The secondary this context looks at: the one it was made `of`, else the first
        (what a check that is not per-secondary, like the delivery probe, replicates to)."""
        return self._secondary or self.cfg.secondaries[0].name

    @property
    def secondary_names(self) -> list[str]:
        """Every secondary, in gdk.yml's order: what the per-secondary checks run over."""
        return [node.name for node in self.cfg.secondaries]

    @cached_property
    def primary(self) -> PrimaryServiceSettings:
        if self._parent:
            return self._parent.primary
        return load_primary(self.node(self.primary_name).gitlab_yml)

    @cached_property
    def secondary(self) -> SecondaryWorkerSettings:
        return load_secondary(self.node(self.secondary_name).gitlab_yml)

    def service_url(self, name: str) -> str:
        """Where the node's Geo service listens, as its rendered gitlab.yml says: what runs,
        even when gdk.yml has changed since (the ports check tells of that)."""
        service = self.primary if name == self.primary_name else self.secondary
        host = service.listen_address
        if host in ("0.0.0.0", "::"):  # bound to every address: reached at its own
            host = self.cfg.node(name).hostname
        return url("http", host, service.port)


@dataclass(frozen=True)
class Check:
    """One diagnostic, declared once: docs/troubleshooting.md's table is built from these."""

    name: str
    title: str  # true when the check passes; printed after ✓ or ✗
    verifies: str  # what is actually looked at, for the troubleshooting table
    fix: str  # the exact fix printed under the ✗
    run: Callable[[Context], Outcome]
    needs: tuple[str, ...] = ()  # names of checks that must pass first
    each_secondary: bool = False  # run once per secondary, each result naming it


@dataclass(frozen=True)
class Result:
    check: Check
    outcome: Outcome
    node: str | None = None  # the secondary a per-secondary check looked at


def yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(path.read_text())
    except FileNotFoundError:
        raise GdkGeoError(f"{path} does not exist") from None
    except (OSError, YAMLError) as exc:
        raise GdkGeoError(f"{path} cannot be read as YAML: {exc}") from None
    if not isinstance(data, dict):
        raise GdkGeoError(f"{path} is not a YAML mapping")
    return data
