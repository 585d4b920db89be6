"""gdk.yml as the user wrote it: parsed with its comments and lines, and the forms a key
is written in.

The file is read in ruamel.yaml's round-trip mode, so every problem can name its line and
`geo.config.set` can write the file back with the user's comments, quotes and key order.
A key has two spellings besides the declared one: the seed's `geo.registry_replication.*`
(GDK's, one level up) and a named node's `geo.nodes.<name>.*`; `canonical_key` and
`written_key` translate between them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from gdk_geo.errors import ConfigError
from gdk_geo.settings.schema import NODE_SPEC_KEY, REPLICATION_KEY

FIX = "edit gdk.yml (gdk.example.yml lists every key with its default), then run the command again"
# The seed (and GDK) write the secondary's replication settings one level up, as
# `geo.registry_replication.*`; they mean the same as `geo.secondary.registry_replication.*`.
SEED_REPLICATION = "geo.registry_replication."
REPLICATION = REPLICATION_KEY + "."
NODES_PREFIX = "geo.nodes."


def round_trip() -> YAML:
    """The YAML reader and writer that keep the user's comments, quotes and key order."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def parse_document(path: Path, text: str) -> CommentedMap:
    """Parse gdk.yml text; a syntax error names the line and column."""
    try:
        document = round_trip().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        reason = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"{path} is not valid YAML: {reason} at {where}",
            where=f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path),
            fix="fix the YAML syntax there (indent with spaces, `key: value` pairs)",
        ) from None
    except YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}", fix=FIX) from None
    except RecursionError:
        raise ConfigError(
            f"{path} is not valid YAML: it is nested too deeply",
            fix="gdk.yml needs at most four levels of settings (see gdk.example.yml)",
        ) from None
    except Exception as exc:
        # ruamel's constructors raise whatever their conversion raises, without a position:
        # ValueError for `!!float abc` or a number of thousands of digits, IndexError for
        # `!!int 0x`, AttributeError for `!!set` on a scalar. The text is the user's file,
        # so each of these is a mistake in it, never a bug to show with a traceback.
        raise ConfigError(
            f"{path} is not valid YAML: a value cannot be read ({exc or type(exc).__name__})",
            fix="look for explicit tags (`!!int`, `!!float`...) and overlong numbers",
        ) from None
    if document is None:
        return CommentedMap()
    if not isinstance(document, CommentedMap):
        raise ConfigError(
            f"{path} must be a mapping of settings, got a {type(document).__name__}",
            fix="start from gdk.example.yml: `cp gdk.example.yml gdk.yml`",
        )
    return document


def line_of(node: CommentedMap, key: str) -> int | None:
    try:
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return None


def line_at(document: CommentedMap, key: str) -> int | None:
    """The line of the dotted `key` in gdk.yml, None when the file does not write it."""
    *parents, leaf = written_key(document, key).split(".")
    node: Any = document
    for part in parents:
        node = node.get(part) if isinstance(node, CommentedMap) else None
    return line_of(node, leaf) if isinstance(node, CommentedMap) and leaf in node else None


def written_key(document: CommentedMap, key: str) -> str:
    """Where `key` stands in this gdk.yml: the seed's form when the file already uses it."""
    if key.startswith(SEED_REPLICATION):
        key = REPLICATION + key.removeprefix(SEED_REPLICATION)
    geo = document.get("geo")
    seed_form = isinstance(geo, CommentedMap) and "registry_replication" in geo
    if key.startswith(REPLICATION) and seed_form:
        return SEED_REPLICATION + key.removeprefix(REPLICATION)
    return key


def canonical_key(key: str) -> str:
    """The declared key for one written in the seed's form (`geo.registry_replication.x`),
    or for a key of a named node (`geo.nodes.<name>.x` is declared as `geo.secondary.x`)."""
    if key.startswith(NODES_PREFIX) and key.count(".") > 2:
        return NODE_SPEC_KEY + key.removeprefix(NODES_PREFIX).split(".", 1)[1]
    if key.startswith(SEED_REPLICATION):
        return REPLICATION + key.removeprefix(SEED_REPLICATION)
    return key
