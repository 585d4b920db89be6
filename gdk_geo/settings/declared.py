"""Walking the settings declaration: every leaf setting with its key, type, default, doc
and check, as `config.py` validates it and `settings_docs.py` documents it.

The schema itself is `schema.py`; this module reads it (with `dataclasses.fields`), so
adding a field there adds its key here, to validation and to the generated documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, get_type_hints

from gdk_geo.settings.schema import NODE_SPEC_KEY, Effective, Settings
from gdk_geo.settings.values import Check


@dataclass(frozen=True)
class Declared:
    """One leaf setting as declared: its dotted key, Python type, default, doc and check."""

    key: str
    type: type
    default: Any
    doc: str
    check: Check | None
    effective: Effective | None = None

    def value_in(self, cfg: Settings, node: str = "") -> Any:
        """The value in use under `cfg`, derived values filled in: of this key, or of the
        same setting in the section of `node`, a node of `geo.nodes` (declared by the
        secondary's section, `NodeSpec`)."""
        if self.effective is not None:
            return self.effective(cfg, node)
        section: Any = cfg.geo.nodes[node] if node else cfg
        path = self.key.removeprefix(NODE_SPEC_KEY) if node else self.key
        for part in path.split("."):
            section = getattr(section, part)
        return section


def _sections(cls: type) -> Iterator[tuple[str, type, Any]]:
    hints = get_type_hints(cls)
    for f in fields(cls):
        yield f.name, hints[f.name], f


def declared(cls: type = Settings, prefix: str = "", defaults: Any = None) -> Iterator[Declared]:
    """Every leaf setting of `cls`, depth first, in declaration order. A default is what
    the section's default holds (`geo.secondary.registry` is a `NodeRegistry` at 5001)."""
    defaults = cls() if defaults is None else defaults
    for name, typ, f in _sections(cls):
        key = f"{prefix}{name}"
        if f.metadata.get("nodes"):
            continue  # `geo.nodes.<name>.*` is declared by its node type (config.py)
        if is_dataclass(typ):
            yield from declared(typ, key + ".", getattr(defaults, name))
        else:
            meta = f.metadata
            default = getattr(defaults, name)
            yield Declared(key, typ, default, meta["doc"], meta["check"], meta["effective"])


DECLARED: dict[str, Declared] = {d.key: d for d in declared()}
