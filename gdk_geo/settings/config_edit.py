"""One gdk.yml key at a time: `invoke geo.config.get KEY` and `geo.config.set KEY VALUE`.

A key is read as its effective value (defaults and derived values filled in) and written
through ruamel.yaml's round-trip mode, so the user's comments and key order survive. A
change is validated as the whole file before anything is written, against the settings in
force (`in_force`: the project applies its recorded roles), so a value `geo.restart` would
refuse is refused here. A refusal is the command's, not the file's: it says the value was
refused and gdk.yml left as it was, and its fix is the command again with what is valid
(a line of gdk.yml and "edit gdk.yml" would point at a file that never held the value).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from gdk_geo.errors import ConfigError, clipped
from gdk_geo.fsutil import atomic_write
from gdk_geo.settings import config, schema
from gdk_geo.settings import values as setting_checks
from gdk_geo.settings.config import InForce, as_written
from gdk_geo.settings.declared import DECLARED, Declared
from gdk_geo.settings.gdk_yml import (
    FIX,
    NODES_PREFIX,
    canonical_key,
    parse_document,
    read_text,
    round_trip,
    written_key,
)
from gdk_geo.settings.values import masked

TWO_NODE_PREFIXES = ("geo.primary.", "geo.secondary.", "geo.registry_replication.")
BOOLEANS = {"true": True, "yes": True, "on": True, "1": True}
BOOLEANS |= {"false": False, "no": False, "off": False, "0": False}


def _declared_or_error(key: str) -> Declared:
    if canonical_key(key) in DECLARED:
        return DECLARED[canonical_key(key)]
    raise ConfigError(
        f"unknown setting `{clipped(key)}`{config.suggestion(key, list(DECLARED))}",
        fix="`invoke geo.config.list` shows every setting",
    )


def _named_node(cfg: schema.Settings, key: str) -> str:
    """The node of `geo.nodes` whose setting `key` is, "" for a key of no named node; a key
    of the other form of gdk.yml than this file's is an error that names the right one."""
    named = key.startswith(NODES_PREFIX)
    name = key.removeprefix(NODES_PREFIX).split(".", 1)[0] if named else ""
    if named and name not in cfg.geo.nodes:
        nodes = ", ".join(cfg.geo.nodes) or "none: it declares `geo.primary` and `geo.secondary`"
        raise ConfigError(
            f"`{clipped(key)}`: gdk.yml has no node {clipped(name, repr)} under geo.nodes "
            f"(its nodes: {nodes})",
            fix="`invoke geo.config.list` shows every setting",
        )
    if cfg.geo.nodes and key.startswith(TWO_NODE_PREFIXES):
        example = f"{NODES_PREFIX}{next(iter(cfg.geo.nodes))}.port"
        raise ConfigError(
            f"`{key}`: this gdk.yml declares its nodes under geo.nodes",
            fix=f"name the node's key, such as `{example}`",
        )
    return name


def value_of(cfg: schema.Settings, key: str) -> Any:
    """The effective value of a dotted key (derived values filled in), in either form."""
    return _declared_or_error(key).value_in(cfg, _named_node(cfg, key))


def refused(key: str, reason: str, valid: str = "", fix: str = "") -> ConfigError:
    """`geo.config.set KEY VALUE` refused: why, that gdk.yml was not touched, and, unless
    a `fix` of its own is given, the command to run again with what is `valid`."""
    again = f"run `invoke geo.config.set {clipped(key)} <value>` again, with {valid}"
    return ConfigError(
        f"geo.config.set refused {clipped(key)}: {reason}; gdk.yml was left as it was",
        fix=fix or again,
    )


def parse_cli_value(key: str, raw: str) -> Any:
    """Turn a command-line string into the setting's type and check it alone, or refuse it
    with what is expected."""
    declared = _declared_or_error(key)
    value: Any = raw
    if declared.type is bool:
        word = raw.strip().lower()
        if word not in BOOLEANS:
            raise refused(key, f"got {clipped(raw, repr)}", "true or false")
        value = BOOLEANS[word]
    elif declared.type is int:
        try:
            value = int(raw)
        except ValueError:
            raise refused(key, f"got {clipped(raw, repr)}", config.expected_of(declared)) from None
    refusal = config.refusal_of(declared, value)
    if refusal:
        raise refused(key, f"got {refusal[0]}", refusal[1])
    return value


def get(path: Path, key: str, in_force: InForce = as_written) -> Any:
    """The effective value of `key` for the gdk.yml at `path`."""
    _declared_or_error(key)
    return value_of(config.load(path, in_force), key)


def shown(key: str, value: Any) -> str:
    """A value as `geo.config.get/set` print it: a secret-bearing setting masked, whatever
    its value, since a terminal's scrollback and a CI log outlive the secret's rotation."""
    if _declared_or_error(key).check is setting_checks.secret:
        return masked(str(value))
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _refuse_shared_port(cfg: schema.Settings, key: str) -> None:
    """Refuse setting `key` to a port another listener already has: the change would be
    written, then `geo.restart` (which the message says to run) would refuse it."""
    listeners = cfg.listeners
    if key not in listeners:
        return
    others = [other for other, port in listeners.items() if other != key and port == listeners[key]]
    if others:
        raise refused(
            key,
            f"port {listeners[key]} is already {others[0]}'s (each listener needs its own)",
            f"a port no other listener has, or change {others[0]} first",
        )


def _file_refusal(key: str, written: str, invalid: config.InvalidFile) -> ConfigError:
    """The refusal for a value the file's own checks refused (a primary_api_url that is the
    secondary's registry, an unusable data_dir, a node name): their words, and their fix
    when it is the command to run. Problems elsewhere in gdk.yml are the file's, with their
    lines: they are fixed first (or set: setting a refused key is how it is mended)."""
    own = [p for p in invalid.problems if p.key == written or written.startswith(p.key + ".")]
    if not own:
        return ConfigError(
            f"{invalid.what}\ngeo.config.set left it as it was: it writes only a valid gdk.yml",
            fix="fix those first (edit gdk.yml, or `invoke geo.config.set` each key), "
            "then run this geo.config.set again",
        )
    reason = "; ".join(p.message for p in own)
    fix = "" if invalid.fix == FIX else invalid.fix
    return refused(key, reason, "another value (the reason above says what it must be)", fix)


def set_value(path: Path, key: str, raw: str, in_force: InForce = as_written) -> None:
    """Set `key` in gdk.yml, keeping comments and key order; nothing is written if invalid."""
    value = parse_cli_value(key, raw)
    document = parse_document(path, read_text(path)) if path.exists() else CommentedMap()
    node = document
    written = written_key(document, key)
    *parents, leaf = written.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, CommentedMap):
            child = CommentedMap()
            node[part] = child
        node = child
    node[leaf] = value
    try:
        cfg = config.validate(path, document, in_force)
    except config.InvalidFile as invalid:
        raise _file_refusal(key, written, invalid) from None
    _refuse_shared_port(cfg, key)
    buffer = io.StringIO()
    round_trip().dump(document, buffer)
    atomic_write(path, buffer.getvalue(), mode=0o600)
