"""gdk.yml: load and validate it against the declared schema, read and edit single keys.

Loading collects every problem before failing, and each problem names the key path, the
line in gdk.yml, what was given and what was expected, so one run tells the user all they
have to fix. Edits go through ruamel.yaml's round-trip mode so the user's comments and key
order survive `invoke geo.config.set`.
"""

from __future__ import annotations

import difflib
import io
import json
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from gdk_geo import settings as schema
from gdk_geo.errors import ConfigError
from gdk_geo.fsutil import atomic_write
from gdk_geo.secret_store import masked

FIX = "edit gdk.yml (gdk.example.yml lists every key with its default), then run the command again"
# The seed (and GDK) write the secondary's replication settings one level up, as
# `geo.registry_replication.*`; they mean the same as `geo.secondary.registry_replication.*`.
SEED_REPLICATION = "geo.registry_replication."
REPLICATION = "geo.secondary.registry_replication."
API_URL_KEY = REPLICATION + "primary_api_url"
NODES_PREFIX = "geo.nodes."
TWO_NODE_FORM = ("primary", "secondary", "registry_replication")
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with gdk.yml, with where it is."""

    key: str
    line: int | None  # 1-based; None when the key is not in the file
    message: str

    def render(self, filename: str) -> str:
        place = f"{filename}:{self.line}" if self.line else filename
        return f"{place}: {self.key}: {self.message}" if self.key else f"{place}: {self.message}"


def _invalid(path: Path, problems: list[Problem]) -> ConfigError:
    noun = "problem" if len(problems) == 1 else "problems"
    lines = "\n".join("  " + p.render(path.name) for p in problems)
    return ConfigError(f"{path} is not valid ({len(problems)} {noun}):\n{lines}", fix=FIX)


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def parse_document(path: Path, text: str) -> CommentedMap:
    """Parse gdk.yml text; a syntax error names the line and column."""
    try:
        document = _round_trip().load(text)
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


def _describe(value: Any) -> str:
    """A value as the user wrote it, with its YAML kind: "'abc' (a string)"."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    for typ, kind in (
        (bool, "a boolean"),
        (int, "a number"),
        (float, "a number"),
        (str, "a string"),
    ):
        if isinstance(value, typ):
            return f"{typ(value)!r} ({kind})"  # typ() drops ruamel's ScalarInt & co.
    return f"a {type(value).__name__}"


def _expected_type(typ: type) -> str:
    return {bool: "true or false", int: "a whole number", str: "a string"}[typ]


def _line_of(node: CommentedMap, key: str) -> int | None:
    try:
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return None


def _suggest(key: str, candidates: list[str], prefix: str = "") -> str:
    """A "did you mean" hint naming the closest known key, as a full dotted path."""
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f"; did you mean `{prefix}{close[0]}`?" if close else ""


def _check_leaf(declared: schema.Declared, value: Any) -> str | None:
    """What is wrong with `value` for this setting, or None."""
    if value is None and declared.type is str and declared.default == "":
        return None  # `notification_secret:` with no value means "generate one"
    type_ok = isinstance(value, declared.type) and not (
        declared.type is int and isinstance(value, bool)
    )
    given = _describe_secret(value) if declared.check is schema.secret else _describe(value)
    if not type_ok:
        return f"got {given}, expected {_expected(declared)}"
    wrong = declared.check(value) if declared.check else None
    return f"got {given}, expected {wrong}" if wrong else None


def _describe_secret(value: Any) -> str:
    """A secret as an error may show it: its length, never its characters (an invalid
    secret is usually the real one with a typo)."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return f"{len(str(value))} characters (not shown: it is a secret)"
    return _describe(value)  # a mapping, a list, a boolean: nothing secret in it


def _expected(declared: schema.Declared) -> str:
    """What a setting expects, in words: its check's text, found with a value it rejects."""
    if declared.check is None:
        return _expected_type(declared.type)
    probe: Any = -1 if declared.type is int else "\x00"
    return declared.check(probe) or _expected_type(declared.type)


def canonical_key(key: str) -> str:
    """The declared key for one written in the seed's form (`geo.registry_replication.x`),
    or for a key of a named node (`geo.nodes.<name>.x` is declared as `geo.secondary.x`)."""
    if key.startswith(NODES_PREFIX) and key.count(".") > 2:
        return "geo.secondary." + key.removeprefix(NODES_PREFIX).split(".", 1)[1]
    if key.startswith(SEED_REPLICATION):
        return REPLICATION + key.removeprefix(SEED_REPLICATION)
    return key


def _seed_replication(node: CommentedMap, prefix: str, problems: list[Problem]) -> Any:
    """The seed's `geo.registry_replication` section, validated as the secondary's."""
    path, line = prefix + "registry_replication", _line_of(node, "registry_replication")
    value = node["registry_replication"]
    secondary = node.get("secondary")
    if isinstance(secondary, CommentedMap) and "registry_replication" in secondary:
        problems.append(
            Problem(path, line, f"also given as `{REPLICATION.rstrip('.')}`: keep one of the two")
        )
        return None
    if not isinstance(value, CommentedMap):
        problems.append(
            Problem(path, line, f"got {_describe(value)}, expected a section of settings")
        )
        return None
    return schema.RegistryReplication(
        **_validate(value, schema.RegistryReplication, path + ".", problems)
    )


def _named_nodes(geo: CommentedMap, problems: list[Problem]) -> dict[str, schema.NodeSpec]:
    """`geo.nodes`: each node's section validated as a node's, and not beside the
    two-node form (`geo.primary`, `geo.secondary`), which would name other nodes."""
    value, line = geo["nodes"], _line_of(geo, "nodes")
    if not isinstance(value, CommentedMap) or len(value) < 2:
        expected = "a mapping of at least two nodes by name (`geo.nodes.<name>.port`...)"
        problems.append(Problem("geo.nodes", line, f"got {_describe(value)}, expected {expected}"))
        return {}
    for other in TWO_NODE_FORM:
        if other in geo:
            problems.append(
                Problem(f"geo.{other}", _line_of(geo, other), "also given `geo.nodes`: keep one")
            )
    specs: dict[str, schema.NodeSpec] = {}
    for name, spec in value.items():
        path = f"{NODES_PREFIX}{name}"
        if not isinstance(name, str) or schema.node_name(name) or not name:
            problems.append(
                Problem(path, _line_of(value, name), "expected a node name such as dc2")
            )
        elif not isinstance(spec, CommentedMap):
            problems.append(
                Problem(path, _line_of(value, name), f"got {_describe(spec)}, expected a node")
            )
        else:
            fields_ = _validate(spec, schema.NodeSpec, path + ".", problems)
            specs[name] = schema.NodeSpec(**fields_)
    return specs


def _primary_node_problem(cfg: schema.Settings) -> str | None:
    """What is wrong with `geo.primary_node`, or None: it must name one of the nodes."""
    if cfg.geo.primary_node in ("", *cfg.node_names):
        return None
    return f"{cfg.geo.primary_node!r} is not a node; the nodes are {', '.join(cfg.node_names)}"


def _validate(node: CommentedMap, cls: type, prefix: str, problems: list[Problem]) -> dict:
    """Check `node` against dataclass `cls`; return the values to build it with."""
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    values: dict[str, Any] = {}
    seed = None
    for key in node:
        path = f"{prefix}{key}"
        line = _line_of(node, key)
        if cls is schema.Geo and key == "registry_replication" and node[key] is not None:
            seed = _seed_replication(node, prefix, problems)
            continue
        if cls is schema.Geo and key == "nodes":
            values[key] = _named_nodes(node, problems)
            continue
        if key not in names:
            hint = _suggest(str(key), names, prefix) or _suggest(path, list(schema.DECLARED))
            problems.append(Problem(path, line, f"unknown key{hint}"))
            continue
        typ, value = hints[key], node[key]
        if is_dataclass(typ):
            if value is None:
                continue
            if not isinstance(value, CommentedMap):
                problems.append(
                    Problem(path, line, f"got {_describe(value)}, expected a section of settings")
                )
                continue
            values[key] = typ(**_validate(value, typ, path + ".", problems))
        else:
            wrong = _check_leaf(schema.DECLARED[canonical_key(path)], value)
            if wrong:
                problems.append(Problem(path, line, wrong))
            else:
                values[key] = "" if value is None else typ(value)  # drop ruamel's wrappers
    if seed is not None:
        secondary = values.get("secondary", schema.Secondary())
        values["secondary"] = replace(secondary, registry_replication=seed)
    return values


def validate(path: Path, document: CommentedMap) -> schema.Settings:
    """Typed settings from a parsed gdk.yml, or one ConfigError listing every problem."""
    problems: list[Problem] = []
    values = _validate(document, schema.Settings, "", problems)
    wrong_dir = _data_dir_problem(path.parent, values.get("data_dir", schema.Settings.data_dir))
    if wrong_dir:
        problems.append(Problem("data_dir", _line_of(document, "data_dir"), wrong_dir))
    cfg = schema.Settings(**values) if not problems else None
    wrong_primary = _primary_node_problem(cfg) if cfg is not None else None
    if wrong_primary:
        geo = document.get("geo")
        line = _line_of(geo, "primary_node") if isinstance(geo, CommentedMap) else None
        problems.append(Problem("geo.primary_node", line, wrong_primary))
    if problems or cfg is None:
        raise _invalid(path, problems)
    _check_primary_api_url(path, document, cfg)
    return cfg


def same_registry(url: str, other: str) -> bool:
    """Whether two registry URLs name one local registry (scheme aside, any local name)."""
    first, second = urlsplit(url), urlsplit(other)
    try:
        same_port = first.port == second.port
    except ValueError:
        return False
    hosts = {first.hostname, second.hostname}
    return same_port and (len(hosts) == 1 or hosts <= LOCAL_HOSTS)


def _api_url_line(document: CommentedMap) -> int | None:
    """The line of primary_api_url in gdk.yml, in whichever form the file writes it."""
    for parents in (("geo", "secondary", "registry_replication"), ("geo", "registry_replication")):
        node: Any = document
        for part in parents:
            node = node.get(part) if isinstance(node, CommentedMap) else None
        if isinstance(node, CommentedMap) and "primary_api_url" in node:
            return _line_of(node, "primary_api_url")
    return None


def _check_primary_api_url(path: Path, document: CommentedMap, cfg: schema.Settings) -> None:
    """Refuse a primary_api_url that cannot reach the primary registry: the secondary's own
    registry (it would replicate itself, and verify would compare it with itself), or plain
    http to the primary registry, which serves only HTTPS (every sync would get HTTP 400)."""
    given = cfg.geo.secondary.registry_replication.primary_api_url
    if not given:
        return
    url = urlsplit(given)
    try:
        port = url.port
    except ValueError:
        return  # not a port at all: geo.check names it (nothing of ours listens there)
    local = url.hostname in LOCAL_HOSTS | {cfg.hostname, cfg.listen_address}
    primary = url._replace(scheme="https").geturl()  # the same URL, as the registry serves it
    if local and port == cfg.geo.secondary.registry.port:
        problem = "is the secondary's own registry: the secondary would replicate itself"
        primary = cfg.node("primary").registry_url
    elif local and port == cfg.geo.primary.registry.port and url.scheme != "https":
        problem = "uses http, but the primary registry serves only HTTPS (every sync fails)"
    else:
        return
    where = Problem(API_URL_KEY, _api_url_line(document), f"{given!r} {problem}")
    raise ConfigError(
        f"{path} is not valid (1 problem):\n  {where.render(path.name)}",
        fix=f"`invoke geo.config.set {API_URL_KEY} {primary}` (the primary registry), "
        "then `invoke geo.restart`",
    )


# What gdk-geo writes into a data directory: its secrets first (`ensure_secrets`), the
# render record last (`render.STATE_FILE`). A directory holding either is one of ours,
# whatever else gdk-geo has added since.
OURS = ("secrets", "rendered.json")
KERNEL_FILE_SYSTEMS = ("/proc", "/sys", "/dev")
_OWN_DIR = "expected a directory of its own, such as .gdk-geo (the default)"


def _data_dir_problem(project_root: Path, data_dir: str) -> str | None:
    """What makes `data_dir` unusable, or None: it must be (or become) a directory that
    holds only gdk-geo's files, since setup writes node roots and secrets into it and
    `geo.destroy --data` deletes what it wrote there."""
    try:
        where = (project_root / data_dir).resolve()
        if any(where.is_relative_to(top) for top in KERNEL_FILE_SYSTEMS):
            return f"{where} is in a kernel file system; {_OWN_DIR}"
        existing = next(p for p in (where, *where.parents) if p.exists())
        if not existing.is_dir():
            return f"{existing} is a file, not a directory; {_OWN_DIR}"
        if existing == where and where != Path("/") and any((where / n).exists() for n in OURS):
            return None
        if existing == where and (where == Path("/") or any(where.iterdir())):
            return f"{where} holds other files; {_OWN_DIR}"
    except (OSError, ValueError) as exc:  # unreadable, a name too long, a NUL byte
        return f"{data_dir!r} is not a usable path ({exc}); {_OWN_DIR}"
    return None


def load(path: Path) -> schema.Settings:
    """Read, parse and validate gdk.yml."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist", fix="run `invoke geo.reconfigure` (it copies gdk.example.yml)"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})", fix=FIX
        ) from None
    return validate(path, parse_document(path, text))


def value_of(cfg: schema.Settings, key: str) -> Any:
    """The effective value of a dotted key (derived values filled in)."""
    return schema.DECLARED[key].value_in(cfg)


# Single-key reads and edits for `invoke geo.config.get/set`.


def _declared_or_error(key: str) -> schema.Declared:
    if canonical_key(key) in schema.DECLARED:
        return schema.DECLARED[canonical_key(key)]
    hint = _suggest(key, list(schema.DECLARED))
    raise ConfigError(
        f"unknown setting `{key}`{hint}",
        fix="`invoke geo.config.list` shows every setting",
    )


def parse_cli_value(key: str, raw: str) -> Any:
    """Turn a command-line string into the setting's type, or explain what is expected."""
    declared = _declared_or_error(key)
    if declared.type is bool:
        lowered = raw.strip().lower()
        if lowered in {"true", "yes", "on", "1"}:
            return True
        if lowered in {"false", "no", "off", "0"}:
            return False
        raise ConfigError(f"{key}: got {raw!r}, expected true or false")
    if declared.type is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{key}: got {raw!r}, expected {_expected(declared)}") from None
    return raw


def get(path: Path, key: str) -> Any:
    """The effective value of `key` for the gdk.yml at `path`."""
    _declared_or_error(key)
    return value_of(load(path), canonical_key(key))


def _written_key(document: CommentedMap, key: str) -> str:
    """Where `key` goes in this gdk.yml: the seed's form when the file already uses it."""
    key = canonical_key(key)
    seed = document.get("geo") if isinstance(document.get("geo"), CommentedMap) else None
    if key.startswith(REPLICATION) and seed is not None and "registry_replication" in seed:
        return SEED_REPLICATION + key.removeprefix(REPLICATION)
    return key


def shown(key: str, value: Any) -> str:
    """A value as `geo.config.get/set` print it: a secret-bearing setting masked, whatever
    its value, since a terminal's scrollback and a CI log outlive the secret's rotation."""
    if _declared_or_error(key).check is schema.secret:
        return masked(str(value))
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _refuse_shared_port(cfg: schema.Settings, key: str) -> None:
    """Refuse setting `key` to a port another listener already has: the change would be
    written, then `geo.restart` (which the message says to run) would refuse it."""
    if schema.DECLARED[key].check is not schema.port:
        return
    value = value_of(cfg, key)
    others = [
        other
        for other, declared in schema.DECLARED.items()
        if declared.check is schema.port and other != key and value_of(cfg, other) == value
    ]
    if others:
        raise ConfigError(
            f"{key}: port {value} is already {others[0]}'s (each listener needs its own)",
            fix=f"choose another port for {key}, or change {others[0]} first",
        )


def set_value(path: Path, key: str, raw: str) -> None:
    """Set `key` in gdk.yml, keeping comments and key order; nothing is written if invalid."""
    value = parse_cli_value(key, raw)
    document = parse_document(path, path.read_text()) if path.exists() else CommentedMap()
    node = document
    *parents, leaf = _written_key(document, key).split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, CommentedMap):
            child = CommentedMap()
            node[part] = child
        node = child
    node[leaf] = value
    _refuse_shared_port(validate(path, document), key)  # both raise before any write
    buffer = io.StringIO()
    _round_trip().dump(document, buffer)
    atomic_write(path, buffer.getvalue(), mode=0o600)
