"""Dependencies point one way: settings → render → nodes → services (primary, secondary) → registry.

Each module of `gdk_geo/` is read with `ast` (not imported), so an import inside a function
counts as much as one at the top. The README's architecture section describes these rules.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

from helpers import REPO_ROOT

SHARED_LEAVES = {
    "gdk_geo.errors",
    "gdk_geo.fsutil",
    "gdk_geo.log_format",
    "gdk_geo.node_settings",
    "gdk_geo.token_auth",
}
# The invoke tasks: the collection and the modules it gathers, the top of the CLI side.
TASKS = {
    "tasks",
    "tasks_support",
    "tasks_lifecycle",
    "tasks_inspect",
    "tasks_replication",
    "tasks_config",
}
# The settings stage in its own order: each module imports only those before it.
SETTINGS_STAGE = (
    "setting_checks",
    "topology",
    "settings",
    "declared",
    "gdk_yml",
    "config",
    "config_edit",
)
CLI_LAYERS_ABOVE = {
    **{
        name: {*SETTINGS_STAGE[place + 1 :], "render", "nodes", "lifecycle", "checks", *TASKS}
        for place, name in enumerate(SETTINGS_STAGE)
    },
    "render": {"nodes", "lifecycle", "checks", *TASKS},
    "nodes": {"lifecycle", "checks", *TASKS},
}


def _module_name(package_dir: Path, path: Path) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(package_dir: Path, base: str, name: str) -> str:
    """`from base import name`: the submodule `base.name` when there is one, else `base`."""
    candidate = f"{base}.{name}"
    relative = Path(*candidate.split(".")[1:])
    root = package_dir / relative
    return candidate if root.with_suffix(".py").exists() or root.is_dir() else base


def imports_of(package_dir: Path, path: Path) -> set[str]:
    """Every module of the package that `path` imports, absolute or relative, anywhere in it."""
    module = _module_name(package_dir, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = package_dir.name
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found |= {_resolve(package_dir, base, alias.name) for alias in node.names}
    return {name for name in found if name == top or name.startswith(top + ".")}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def rule_for(module: str) -> Callable[[str], str | None] | None:
    """The rule `module` obeys: a function from an imported module to why it may not."""
    if _within(module, "gdk_geo.registry"):
        return lambda name: (
            None
            if _within(name, "gdk_geo.registry") or name == "gdk_geo.errors"
            else "the registry package imports only itself and gdk_geo.errors"
        )
    for service, other in (("primary", "secondary"), ("secondary", "primary")):
        if _within(module, f"gdk_geo.{service}"):
            own, peer = f"gdk_geo.{service}", f"gdk_geo.{other}"

            def allowed(name: str, own: str = own, peer: str = peer) -> str | None:
                if _within(name, own) or _within(name, "gdk_geo.registry"):
                    return None
                if name in SHARED_LEAVES:
                    return None
                if _within(name, peer):
                    return "the two services never import each other"
                return "a service imports its own package, the registry and the shared leaves"

            return allowed
    leaf = module.removeprefix("gdk_geo.")
    if leaf in CLI_LAYERS_ABOVE:
        above = {f"gdk_geo.{name}" for name in CLI_LAYERS_ABOVE[leaf]}
        return lambda name: f"{module} sits below {name}" if name in above else None
    return None


def violations(package_dir: Path) -> list[str]:
    """`module imports name: why` for every import that runs against the order."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        module = _module_name(package_dir, path)
        rule = rule_for(module)
        for name in sorted(imports_of(package_dir, path)):
            why = rule(name) if rule else None
            if why:
                found.append(f"{module} imports {name}: {why}")
    return found


def test_no_import_runs_against_the_order() -> None:
    assert violations(REPO_ROOT / "gdk_geo") == []


def test_every_layer_the_rules_name_exists() -> None:
    """A renamed module would make its rule silently vacuous."""
    package = REPO_ROOT / "gdk_geo"
    for name in {*CLI_LAYERS_ABOVE, *(n for names in CLI_LAYERS_ABOVE.values() for n in names)}:
        assert (package / f"{name}.py").exists(), name
    for name in ("registry", "primary", "secondary"):
        assert (package / name / "__init__.py").exists(), name
    for leaf in SHARED_LEAVES:
        assert (package / f"{leaf.removeprefix('gdk_geo.')}.py").exists(), leaf


def _tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "gdk_geo"
    for relative, source in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return package


def test_imports_against_the_order_are_found(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "settings.py": "def f():\n    from gdk_geo import render\n",
            "render.py": "from . import nodes\n",
            "nodes.py": "",
            "registry/__init__.py": "",
            "registry/client.py": "from ..errors import E\nfrom gdk_geo.settings import S\n",
            "primary/__init__.py": "",
            "primary/service.py": "import gdk_geo.secondary.worker\nfrom gdk_geo import tasks\n",
            "secondary/__init__.py": "",
            "secondary/worker.py": "from gdk_geo.registry import client\nfrom . import worker\n",
            "tasks.py": "",
        },
    )
    assert violations(package) == [
        "gdk_geo.primary.service imports gdk_geo.secondary.worker: "
        "the two services never import each other",
        "gdk_geo.primary.service imports gdk_geo.tasks: "
        "a service imports its own package, the registry and the shared leaves",
        "gdk_geo.registry.client imports gdk_geo.settings: "
        "the registry package imports only itself and gdk_geo.errors",
        "gdk_geo.render imports gdk_geo.nodes: gdk_geo.render sits below gdk_geo.nodes",
        "gdk_geo.settings imports gdk_geo.render: gdk_geo.settings sits below gdk_geo.render",
    ]


def test_the_product_never_imports_the_test_kit() -> None:
    for path in sorted((REPO_ROOT / "gdk_geo").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in {"testkit", "bench", "tests"}}, path


def test_tests_import_no_conftest() -> None:
    """Fixtures come from conftest by pytest; plain helpers from `helpers` or `testkit`."""
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted((REPO_ROOT / "tests").rglob("*.py"))
        if any(
            (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "conftest")
            or (
                isinstance(node, ast.Import)
                and any(a.name.endswith("conftest") for a in node.names)
            )
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert offenders == []
