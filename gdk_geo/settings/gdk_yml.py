"""gdk.yml as the user wrote it: parsed with its comments and lines, and the forms a key
is written in.

The file is read in ruamel.yaml's round-trip mode, so every problem can name its line and
`geo.config.set` can write the file back with the user's comments, quotes and key order.
A key has two spellings besides the declared one: the seed's `geo.registry_replication.*`
(GDK's, one level up) and a named node's `geo.nodes.<name>.*`; `canonical_key` and
`written_key` translate between them.

The parse is pure Python, a few thousand keys a second, so a file over `MAX_BYTES` is
refused before it is read: one padded to 50 MB kept a command silent for minutes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from gdk_geo.errors import ConfigError, clipped
from gdk_geo.settings.schema import NODE_SPEC_KEY, REPLICATION_KEY

FIX = "edit gdk.yml (gdk.example.yml lists every key with its default), then run the command again"
# The seed (and GDK) write the secondary's replication settings one level up, as
# `geo.registry_replication.*`; they mean the same as `geo.secondary.registry_replication.*`.
SEED_REPLICATION = "geo.registry_replication."
REPLICATION = REPLICATION_KEY + "."
NODES_PREFIX = "geo.nodes."
# The largest gdk.yml read: twenty times gdk.example.yml with every setting and its doc, far
# more than any number of named nodes needs, and small enough that even a file of nothing
# but keys parses in a few seconds.
MAX_BYTES = 64 * 1024
MAX_SIZE = f"{MAX_BYTES // 1024} KiB"  # as the messages and the settings docs say it


def read_text(path: Path) -> str:
    """gdk.yml's text: refused unread when over `MAX_BYTES`, and refused with the line and
    column of the first byte that is not UTF-8. At most MAX_BYTES + 1 bytes are read, so a
    gdk.yml that links to an endless device (/dev/zero) is refused as quickly."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
            size = max(os.fstat(file.fileno()).st_size, len(data))
    except FileNotFoundError:
        raise  # the caller's to word: `load` says how to create one, `set` starts one
    except OSError as exc:  # a directory, a file without read permission
        raise ConfigError(f"{path} cannot be read ({exc.strerror})", fix=FIX) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{path} is larger than the {MAX_SIZE} a gdk.yml may be ({size:,} bytes)",
            fix="keep gdk.yml to its settings and their comments (gdk.example.yml, with "
            "every setting, is a small fraction of that), then run the command again",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data, exc) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as Path.read_text reads it


def _not_utf8(path: Path, data: bytes, exc: UnicodeDecodeError) -> ConfigError:
    """The error for bytes that are not UTF-8, placed by line and column (in characters),
    as an editor shows them: a byte offset is no help in finding them."""
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    column = len(data[line_start : exc.start].decode("utf-8")) + 1
    return ConfigError(
        f"{path} is not UTF-8 text at line {line}, column {column} ({exc.reason})",
        where=f"{path}:{line}:{column}",
        fix="retype the character there, or save gdk.yml as UTF-8 (the editor's encoding)",
    )


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
        reason = clipped(exc.problem or exc.context or "invalid YAML")  # may quote a value
        raise ConfigError(
            f"{path} is not valid YAML: {reason} at {where}",
            where=f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path),
            fix="fix the YAML syntax there (indent with spaces, `key: value` pairs)",
        ) from None
    except YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {clipped(str(exc))}", fix=FIX) from None
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
            f"{path} is not valid YAML: a value cannot be read "
            f"({clipped(str(exc) or type(exc).__name__)})",
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
