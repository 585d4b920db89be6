"""Dependencies point one way, by an allow-list: each package names what it may import.

The CLI side runs settings → project → pki → render → runtime → ops → doctor → cli, the way
a change travels from `gdk.yml` to the registries; the services (`primary`, `secondary`)
read only `node` (their rendered gitlab.yml), the `registry` client and the shared leaves,
never each other and never the CLI. Every module of `gdk_geo/` belongs to one package or is
a shared leaf; a new top-level module, or a package missing from `ALLOWED`, fails here.

Modules are read with `ast`, not imported, so an import inside a function counts as much as
one at the top. docs/architecture.md describes these rules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "gdk_geo"
LEAVES = ("errors", "fsutil", "procutil")
# Each package and what it may import besides itself and the shared leaves, in order.
ALLOWED: dict[str, set[str]] = {
    "registry": set(),
    "node": {"registry"},
    "primary": {"node", "registry"},
    "secondary": {"node", "registry"},
    # The link relay stands apart too: the CLI drives it through its spec file and process.
    "link": set(),
    "settings": set(),
    "project": {"settings"},
    "pki": {"settings", "project", "registry"},
    "render": {"settings", "project", "pki", "node", "registry"},
    "runtime": {"settings", "project", "pki", "render", "node", "registry"},
    "ops": {
        *("settings", "project", "pki", "render", "runtime", "node", "registry"),
        *("primary", "secondary", "link"),
    },
    "doctor": {
        *("settings", "project", "pki", "render", "runtime", "ops", "node", "registry"),
        *("primary", "secondary", "link"),
    },
    "cli": {
        *("settings", "project", "pki", "render", "runtime", "ops", "doctor", "node"),
        *("registry", "primary", "secondary", "link"),
    },
}
# The registry client stands apart: it imports nothing of gdk_geo but the error type.
REGISTRY_LEAVES = ("errors",)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    target = PACKAGE_DIR / relative
    return target.with_suffix(".py").exists() or (target / "__init__.py").exists()


def imports_of(path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name) for every gdk_geo import in `path`, anywhere in it: `name` is the
    imported name when it is not a module itself, else None."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gdk_geo":
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base.split(".")[0] != "gdk_geo":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate, None) if _is_module(candidate) else (base, alias.name)


def package_of(module: str) -> str:
    """The package a module belongs to (`settings` for gdk_geo.settings.schema), or the leaf's
    own name for a shared leaf."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gdk_geo"


def face(package: str) -> set[str]:
    """What `gdk_geo.<package>/__init__.py` lists in `__all__`, read with ast."""
    tree = ast.parse((PACKAGE_DIR / package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def direction_problems(module: str, imported: str) -> str | None:
    """Why `module` may not import `imported`, or None."""
    mine, theirs = package_of(module), package_of(imported)
    if mine == theirs or theirs == "gdk_geo":
        return None
    if theirs in LEAVES:
        if mine == "registry" and theirs not in REGISTRY_LEAVES:
            return "the registry package imports only itself and gdk_geo.errors"
        return None
    if mine in LEAVES:
        return f"the shared leaf {module} imports nothing of gdk_geo"
    if theirs not in ALLOWED[mine]:
        return f"gdk_geo.{mine} may import only {sorted(ALLOWED[mine]) or 'the leaves'}"
    return None


def face_problems(module: str, imported: str, name: str | None) -> str | None:
    """Why `module` may not reach into another package this way, or None: across packages,
    only what the face exports, and never a private name."""
    mine, theirs = package_of(module), package_of(imported)
    if mine == theirs or theirs in (*LEAVES, "gdk_geo"):
        return None
    if name is not None and name.startswith("_"):
        return f"imports the private name {name}"
    exported = face(theirs)
    inner = imported.split(".")[2:]
    if not inner:  # the package itself, or `from gdk_geo.<pkg> import name`
        return (
            None if name is None or name in exported else f"gdk_geo.{theirs} does not export {name}"
        )
    if inner[0] not in exported:
        return f"gdk_geo.{theirs} does not export its module {inner[0]}"
    return None


def problems() -> list[str]:
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = _module_name(path)
        for imported, name in imports_of(path):
            why = direction_problems(module, imported) or face_problems(module, imported, name)
            if why:
                found.append(f"{module} imports {imported}{'.' + name if name else ''}: {why}")
    return found


def test_every_module_belongs_to_a_package_or_is_a_leaf() -> None:
    top = sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__")
    assert top == sorted(LEAVES), "gdk_geo/ holds only the shared leaves; put it in a package"
    packages = sorted(p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py"))
    assert packages == sorted(ALLOWED), "every package names what it may import in ALLOWED"


def test_every_package_names_its_face() -> None:
    for package in ALLOWED:
        exported = face(package)
        assert exported, f"gdk_geo/{package}/__init__.py has no __all__"
        for name in exported:
            if _is_module(f"gdk_geo.{package}.{name}"):
                continue
            assert name in (PACKAGE_DIR / package / "__init__.py").read_text(), name


# Faces that re-export their main module's names (cheap, pure-Python modules everyone
# needs); every other face only lists its modules, so importing it loads none of them
# (the services' start-up and a quick task's import time stay what they were).
EAGER_FACES = {"settings", "project", "render"}


def test_lazy_faces_load_none_of_their_modules() -> None:
    lazy = sorted(f"gdk_geo.{package}" for package in ALLOWED if package not in EAGER_FACES)
    code = (
        "import sys\n"
        f"for package in {lazy!r}: __import__(package)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({tuple(lazy)!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == repr(lazy)


def test_imports_follow_the_order_and_the_faces() -> None:
    assert problems() == []


def test_no_import_circle() -> None:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        module = _module_name(path)
        graph[module] = {imported for imported, _ in imports_of(path)} - {module}
    for package in ALLOWED:  # a package's face imports its modules; that is no circle
        graph[f"gdk_geo.{package}"] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for nxt in sorted(graph.get(module, ())):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " → ".join([*stack[stack.index(nxt) :], nxt]))
            if not state.get(nxt):
                visit(nxt)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if not state.get(module):
            visit(module)


@pytest.mark.parametrize(
    ("module", "imported", "name", "why"),
    [
        ("gdk_geo.settings.schema", "gdk_geo.ops.promote", None, "may import only"),
        ("gdk_geo.pki.certs", "gdk_geo.ops.lifecycle", None, "may import only"),
        ("gdk_geo.registry.client", "gdk_geo.settings.schema", None, "may import only"),
        ("gdk_geo.registry.client", "gdk_geo.fsutil", None, "only itself and gdk_geo.errors"),
        ("gdk_geo.primary.app", "gdk_geo.secondary.tracking", None, "may import only"),
        ("gdk_geo.secondary.worker", "gdk_geo.settings.schema", None, "may import only"),
        ("gdk_geo.ops.promote", "gdk_geo.secondary.web", None, "does not export its module"),
        ("gdk_geo.ops.promote", "gdk_geo.secondary.verify", "_private", "private name"),
        ("gdk_geo.cli.tasks", "gdk_geo.doctor", "local_checks", "does not export"),
        ("gdk_geo.fsutil", "gdk_geo.settings.schema", None, "imports nothing"),
    ],
)
def test_imports_against_the_rules_are_found(module, imported, name, why) -> None:
    found = direction_problems(module, imported) or face_problems(module, imported, name)
    assert found and why in found


def test_allowed_imports_pass() -> None:
    assert direction_problems("gdk_geo.cli.tasks", "gdk_geo.doctor.checks") is None
    assert face_problems("gdk_geo.cli.tasks", "gdk_geo.doctor.checks", None) is None
    assert face_problems("gdk_geo.ops.status", "gdk_geo.settings", "Settings") is None
