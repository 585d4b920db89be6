"""What `geo.check` is made of: a check, the context it reads, and what it found.

A check is a small function from a `Context` to an `Outcome`, like GDK's `Diagnostic`
classes with their `success?` and `detail`; a `GdkGeoError` raised inside one is its
failure. The checks themselves are in `local_checks` and `live_checks`, declared in
`checks.CHECKS`.
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

from gdk_geo import nodes
from gdk_geo.errors import GdkGeoError
from gdk_geo.node_settings import (
    PrimaryServiceSettings,
    SecondaryWorkerSettings,
    load_primary,
    load_secondary,
)
from gdk_geo.project import NodePaths, Project
from gdk_geo.settings import Settings
from gdk_geo.topology import url

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
    """

    def __init__(self, project: Project) -> None:
        self.project = project

    @cached_property
    def cfg(self) -> Settings:
        return self.project.load()

    @cached_property
    def client(self) -> docker.DockerClient:
        return nodes.engine()

    def node(self, name: str) -> NodePaths:
        return self.project.node(self.cfg, name)

    @property
    def primary_name(self) -> str:
        return self.cfg.primary_name

    @property
    def secondary_name(self) -> str:
        """The secondary the replication checks look at: the first one."""
        return self.cfg.secondaries[0].name

    @cached_property
    def primary(self) -> PrimaryServiceSettings:
        return load_primary(self.node(self.primary_name).gitlab_yml)

    @cached_property
    def secondary(self) -> SecondaryWorkerSettings:
        return load_secondary(self.node(self.secondary_name).gitlab_yml)

    def service_url(self, name: str) -> str:
        """Where the node's Geo service listens, as its rendered gitlab.yml says: what runs,
        even when gdk.yml has changed since (the ports check tells of that)."""
        service = self.primary if name == self.primary_name else self.secondary
        return url("http", service.listen_address, service.port)


@dataclass(frozen=True)
class Check:
    """One diagnostic, declared once: the README's troubleshooting table is built from these."""

    name: str
    title: str  # true when the check passes; printed after ✓ or ✗
    verifies: str  # what is actually looked at, for the README
    fix: str  # the exact fix printed under the ✗
    run: Callable[[Context], Outcome]
    needs: tuple[str, ...] = ()  # names of checks that must pass first


@dataclass(frozen=True)
class Result:
    check: Check
    outcome: Outcome


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
