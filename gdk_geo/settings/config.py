"""gdk.yml: validate it against the declared schema, into the typed `Settings`.

Loading collects every problem before failing, and each problem names the key path, the
line in gdk.yml, what was given and what was expected, so one run tells the user all they
have to fix (the first `LISTED` of them, and how many more: a file of thousands of stray
keys would otherwise be echoed whole). What was given is shown as a prefix when it is
long (`errors.clipped`). Reading the text, and where a key stands in it, is `gdk_yml.py`'s.

Most problems are the file's alone. Whether a hand-set `primary_api_url` reaches the
primary registry depends on which node is primary now, which a promotion records outside
gdk.yml: the caller passes `in_force`, what turns the file's settings into the settings in
force (the project applies its recorded roles), and that check runs on its result.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from ruamel.yaml.comments import CommentedMap

from gdk_geo.errors import ConfigError, clipped
from gdk_geo.settings import schema
from gdk_geo.settings import values as setting_checks
from gdk_geo.settings.declared import DECLARED, Declared
from gdk_geo.settings.gdk_yml import (
    FIX,
    NODES_PREFIX,
    REPLICATION,
    canonical_key,
    line_at,
    line_of,
    parse_document,
    read_text,
)
from gdk_geo.settings.schema import Member

API_URL_KEY = REPLICATION + "primary_api_url"
TWO_NODE_FORM = ("primary", "secondary", "registry_replication")
LISTED = 20  # the problems a message lists; it counts the rest
InForce = Callable[[schema.Settings], schema.Settings]


def as_written(cfg: schema.Settings) -> schema.Settings:
    """The settings in force when nothing outside gdk.yml changes them."""
    return cfg


@dataclass(frozen=True)
class Problem:
    """One thing wrong with gdk.yml, with where it is."""

    key: str
    line: int | None  # 1-based; None when the key is not in the file
    message: str

    def render(self, filename: str) -> str:
        place = f"{filename}:{self.line}" if self.line else filename
        key = clipped(self.key)  # an unknown key is the user's text, of any length
        return f"{place}: {key}: {self.message}" if self.key else f"{place}: {self.message}"


class InvalidFile(ConfigError):
    """gdk.yml's problems, listed with their lines; `problems` keeps them apart for
    `geo.config.set`, which words those of the key it was given as a refused value."""

    def __init__(self, path: Path, problems: list[Problem], fix: str = FIX) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = ["  " + p.render(path.name) for p in problems[:LISTED]]
        if len(problems) > LISTED:
            lines.append(f"  … and {len(problems) - LISTED} more")
        listed = "\n".join(lines)
        super().__init__(f"{path} is not valid ({len(problems)} {noun}):\n{listed}", fix=fix)


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
            plain = typ(value)  # drops ruamel's ScalarInt & co.
            shown = clipped(plain, repr) if isinstance(plain, str) else clipped(repr(plain))
            return f"{shown} ({kind})"
    return f"a {type(value).__name__}"


def _expected_type(typ: type) -> str:
    return {bool: "true or false", int: "a whole number", str: "a string"}[typ]


def suggestion(key: str, candidates: list[str], prefix: str = "") -> str:
    """A "did you mean" hint naming the closest known key, as a full dotted path."""
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f"; did you mean `{prefix}{close[0]}`?" if close else ""


def refusal_of(declared: Declared, value: Any) -> tuple[str, str] | None:
    """What was given and what was expected, in words, when `value` is not valid for this
    setting; None when it is. Apart, so that `geo.config.set` can name what is valid in
    its fix; validation says both (`_check_leaf`)."""
    if value is None and declared.type is str and declared.default == "":
        return None  # `notification_secret:` with no value means "generate one"
    type_ok = isinstance(value, declared.type) and not (
        declared.type is int and isinstance(value, bool)
    )
    given = _describe_secret(value) if declared.check is setting_checks.secret else _describe(value)
    if not type_ok:
        return given, expected_of(declared)
    wrong = declared.check(value) if declared.check else None
    return (given, wrong) if wrong else None


def _check_leaf(declared: Declared, value: Any) -> str | None:
    """What is wrong with `value` for this setting, or None."""
    refusal = refusal_of(declared, value)
    return f"got {refusal[0]}, expected {refusal[1]}" if refusal else None


def _describe_secret(value: Any) -> str:
    """A secret as an error may show it: its length, never its characters (an invalid
    secret is usually the real one with a typo)."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return f"{len(str(value))} characters (not shown: it is a secret)"
    return _describe(value)  # a mapping, a list, a boolean: nothing secret in it


def expected_of(declared: Declared) -> str:
    """What a setting expects, in words: its check's text, found with a value it rejects."""
    if declared.check is None:
        return _expected_type(declared.type)
    probe: Any = -1 if declared.type is int else "\x00"
    return declared.check(probe) or _expected_type(declared.type)


def _seed_replication(node: CommentedMap, prefix: str, problems: list[Problem]) -> Any:
    """The seed's `geo.registry_replication` section, validated as the secondary's."""
    path, line = prefix + "registry_replication", line_of(node, "registry_replication")
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
    value, line = geo["nodes"], line_of(geo, "nodes")
    if not isinstance(value, CommentedMap) or len(value) < 2:
        expected = "a mapping of at least two nodes by name (`geo.nodes.<name>.port`...)"
        problems.append(Problem("geo.nodes", line, f"got {_describe(value)}, expected {expected}"))
        return {}
    for other in TWO_NODE_FORM:
        if other in geo:
            problems.append(
                Problem(f"geo.{other}", line_of(geo, other), "also given `geo.nodes`: keep one")
            )
    specs: dict[str, schema.NodeSpec] = {}
    for name, spec in value.items():
        path = f"{NODES_PREFIX}{name}"
        if not isinstance(name, str) or setting_checks.node_name(name) or not name:
            expected = f"expected a node name ({setting_checks.NAME_RULES}), such as dc2"
            problems.append(Problem(path, line_of(value, name), expected))
        elif not isinstance(spec, CommentedMap):
            problems.append(
                Problem(path, line_of(value, name), f"got {_describe(spec)}, expected a node")
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
    defaults = cls()  # a section's default may differ from its type's (geo.secondary.registry)
    values: dict[str, Any] = {}
    seed = None
    for key in node:
        path = f"{prefix}{key}"
        line = line_of(node, key)
        if cls is schema.Geo and key == "registry_replication" and node[key] is not None:
            seed = _seed_replication(node, prefix, problems)
            continue
        if cls is schema.Geo and key == "nodes":
            values[key] = _named_nodes(node, problems)
            continue
        if key not in names:
            hint = suggestion(str(key), names, prefix) or suggestion(path, list(DECLARED))
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
            given = _validate(value, typ, path + ".", problems)
            values[key] = replace(getattr(defaults, key), **given)
        else:
            wrong = _check_leaf(DECLARED[canonical_key(path)], value)
            if wrong:
                problems.append(Problem(path, line, wrong))
            else:
                values[key] = "" if value is None else typ(value)  # drop ruamel's wrappers
    if seed is not None:
        secondary = values.get("secondary", schema.Secondary())
        values["secondary"] = replace(secondary, registry_replication=seed)
    return values


def validate(path: Path, document: CommentedMap, in_force: InForce = as_written) -> schema.Settings:
    """The settings in force for a parsed gdk.yml, or one ConfigError listing every problem."""
    problems: list[Problem] = []
    values = _validate(document, schema.Settings, "", problems)
    wrong_dir = _data_dir_problem(path.parent, values.get("data_dir", schema.Settings.data_dir))
    if wrong_dir:
        problems.append(Problem("data_dir", line_of(document, "data_dir"), wrong_dir))
    cfg = schema.Settings(**values) if not problems else None
    wrong_primary = _primary_node_problem(cfg) if cfg is not None else None
    if wrong_primary:
        line = line_at(document, "geo.primary_node")
        problems.append(Problem("geo.primary_node", line, wrong_primary))
    problems += _address_problems(document, cfg) if cfg is not None else []
    if problems or cfg is None:
        raise InvalidFile(path, problems)
    current = in_force(cfg)
    refusals = [
        refusal
        for member in current.layout.secondaries
        if (refusal := _api_url_refusal(document, current, member)) is not None
    ]
    if refusals:
        fixes = ", ".join(dict.fromkeys(fix for _, fix in refusals))
        fix = f"{fixes} (the primary registry), then `invoke geo.restart`"
        raise InvalidFile(path, [problem for problem, _ in refusals], fix=fix)
    return current


def _address_problems(document: CommentedMap, cfg: schema.Settings) -> list[Problem]:
    """A node on an engine of its own must say where it is reached: `hostname` names this
    machine, which the other nodes cannot use to reach another one."""
    problems = []
    for member in cfg.layout.members:
        if member.spec.docker.host and not member.spec.address:
            key = f"{member.key}.docker.host"
            wanted = (
                f"is set, so `{member.key}.address` is required: the address the other "
                "nodes and the CLI reach this node at, such as 198.18.1.2"
            )
            problems.append(Problem(key, line_at(document, key), wanted))
    return problems


def _api_url_refusal(
    document: CommentedMap, cfg: schema.Settings, member: Member
) -> tuple[Problem, str] | None:
    """The problem with secondary `member`'s hand-set primary_api_url, and the command that
    fixes it, when the URL cannot reach the primary registry: the node's own registry (it
    would replicate itself, and verify would compare it with itself), or plain http to the
    primary registry, which serves only HTTPS (every sync would get HTTP 400). A URL where
    nothing of ours listens is geo.check's to name: it may be a mirror that is down now."""
    given = member.replication.primary_api_url
    if not given:
        return None
    aim = cfg.aim_of(given)
    if aim.node is not None and aim.node.name == member.name:
        problem = f"is the secondary's own registry (node {member.name}): it would replicate itself"
        fixed = cfg.primary.registry_url
    elif aim.node is not None and aim.node.is_primary and aim.scheme != "https":
        problem = "uses http, but the primary registry serves only HTTPS (every sync fails)"
        fixed = urlsplit(given)._replace(scheme="https").geturl()
    else:
        return None
    key = member.api_url_key
    refusal = Problem(key, line_at(document, key), f"{clipped(given, repr)} {problem}")
    return refusal, f"`invoke geo.config.set {key} {clipped(fixed)}`"


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
            return f"{clipped(str(where))} is in a kernel file system; {_OWN_DIR}"
        existing = next(p for p in (where, *where.parents) if p.exists())
        if not existing.is_dir():
            return f"{clipped(str(existing))} is a file, not a directory; {_OWN_DIR}"
        if existing == where and where != Path("/") and any((where / n).exists() for n in OURS):
            return None
        if existing == where and (where == Path("/") or any(where.iterdir())):
            return f"{clipped(str(where))} holds other files; {_OWN_DIR}"
    except (OSError, ValueError) as exc:  # unreadable, a name too long, a NUL byte
        reason = getattr(exc, "strerror", None) or str(exc)  # an OSError's str names the path
        return f"{clipped(data_dir, repr)} is not a usable path ({reason}); {_OWN_DIR}"
    return None


def load(path: Path, in_force: InForce = as_written) -> schema.Settings:
    """Read, parse and validate gdk.yml: the settings `in_force` makes of it."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist", fix="run `invoke geo.reconfigure` (it copies gdk.example.yml)"
        ) from None
    return validate(path, parse_document(path, text), in_force)
