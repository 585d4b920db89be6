"""Which node is primary, recorded in one place: `<data_dir>/roles.json`, written atomically.

gdk.yml says which node *starts* as primary (`geo.primary_node`); a promotion must outlive
gdk.yml edits and reboots, so `geo.promote` records the new primary here and every task
reads the settings through `applied()`. One file, replaced whole by `atomic_write`, is what
makes an interrupted promote safe to run again: the record is either the old one or the
new one, never half of each. The nodes' rendered gitlab.yml files are what each node
*believes* (`geo.primary`); `claimed_primaries()` reads them, so `geo.check` can tell when
two nodes believe they are primary.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gdk_geo.fsutil import atomic_write
from gdk_geo.settings import Settings

ROLES_FILE = "roles.json"


@dataclass(frozen=True)
class Roles:
    """The recorded roles: the primary, how many promotions led here, and the nodes
    fenced by a forced promotion (read-only until `geo.reconcile` clears them)."""

    primary: str
    generation: int = 0
    fenced: tuple[str, ...] = ()
    promoting: str = ""  # a promotion to this node began and has not finished
    previous: str = ""  # the primary before the last promotion
    history: list[str] = field(default_factory=list)


def read_only(recorded: Roles) -> frozenset[str]:
    """The nodes whose registry refuses pushes now: the primary while a planned promotion
    waits for its target, and every fenced node."""
    waiting = {recorded.primary} if recorded.promoting else set()
    return frozenset(waiting | set(recorded.fenced))


def path(data_dir: Path) -> Path:
    return data_dir / ROLES_FILE


def read(data_dir: Path) -> Roles | None:
    """The recorded roles, or None when nothing was ever promoted (or the file is unreadable:
    gdk.yml's `geo.primary_node` rules then, as before any promotion)."""
    try:
        data = json.loads(path(data_dir).read_text())
        return Roles(
            primary=str(data["primary"]),
            generation=int(data.get("generation", 0)),
            fenced=tuple(str(n) for n in data.get("fenced", ())),
            promoting=str(data.get("promoting", "")),
            previous=str(data.get("previous", "")),
            history=[str(n) for n in data.get("history", [])],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(data_dir: Path, roles: Roles) -> None:
    """Replace the record whole (atomically): a crash leaves the old record or the new."""
    data = asdict(roles)
    data["fenced"] = list(roles.fenced)
    atomic_write(path(data_dir), json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)


def current(cfg: Settings, data_dir: Path) -> Roles:
    """The roles in force: the record when it names a node of gdk.yml, else gdk.yml's."""
    recorded = read(data_dir)
    if recorded is not None and recorded.primary in cfg.node_names:
        return recorded
    return Roles(primary=cfg.primary_name)


def applied(cfg: Settings, data_dir: Path) -> Settings:
    """`cfg` with the recorded primary in force (what every task renders and reads)."""
    return cfg.with_primary(current(cfg, data_dir).primary)


def believes_primary(gitlab_yml: Path) -> bool | None:
    """What a node's rendered gitlab.yml says of it (`geo.primary`); None when unreadable."""
    try:
        data = YAML(typ="safe").load(gitlab_yml.read_text())
        return bool(data["geo"]["primary"])
    except (OSError, YAMLError, TypeError, KeyError):
        return None


def claimed_primaries(node_files: dict[str, Path]) -> list[str]:
    """The nodes (by name) whose rendered gitlab.yml says they are primary."""
    return [name for name, gitlab_yml in node_files.items() if believes_primary(gitlab_yml)]
