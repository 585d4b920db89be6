"""The registry package and the two services show a surface, and their modules form no circle.

Each package's `__init__` names its public submodules in `__all__` (and imports none of them,
so importing the package loads nothing). Code outside a package may import
`from gdk_geo.P import M` or `from gdk_geo.P.M import name` only when `M` is in `P.__all__`
and `name` does not start with `_`: what is left off, or private, can change without
breaking the CLI, the tests or the benchmarks. Every file is read with `ast`, so an import
inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from helpers import REPO_ROOT

PACKAGES = ("gdk_geo.registry", "gdk_geo.primary", "gdk_geo.secondary")
_SKIPPED_DIRS = {"__pycache__", "build", "dist"}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _sources(root: Path) -> Iterator[Path]:
    """Every Python file of the project under `root`, leaving out hidden and build dirs."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts[:-1]
        if not any(part.startswith(".") or part in _SKIPPED_DIRS for part in parts):
            yield path


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(root: Path, path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line, module, name) for every import in `path`: `name` is None when the import
    names a module itself (`import a.b`, `from a import b` with `a/b.py`)."""
    module = _module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if _is_module(root, submodule):
                    yield node.lineno, submodule, None
                else:
                    yield node.lineno, base, alias.name


def public_submodules(root: Path, package: str) -> list[str]:
    """`package.__all__`, read from its `__init__.py` without importing it."""
    init = root.joinpath(*package.split("."), "__init__.py")
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return list(ast.literal_eval(node.value))
    return []


def _why_not(imported: str, name: str | None, package: str, public: list[str]) -> str | None:
    """Why importing `name` from `imported` (inside `package`) breaks the rule, if it does."""
    rest = imported.removeprefix(package).lstrip(".")
    submodule, item = (rest.split(".")[0], name) if rest else (name, None)
    if submodule is None:
        return None  # `import gdk_geo.P` alone reaches nothing
    if submodule not in public:
        return f"{package}.{submodule} is not in {package}.__all__"
    if item is not None and item.startswith("_"):
        return f"{item} is private to {package}.{submodule}"
    return None


def surface_violations(root: Path) -> list[str]:
    """`file:line: why` for every import into a package from outside that the rule forbids."""
    public = {package: public_submodules(root, package) for package in PACKAGES}
    found = []
    for path in _sources(root):
        module = _module_name(root, path)
        for line, imported, name in imports_of(root, path):
            for package in PACKAGES:
                if not _within(imported, package) or _within(module, package):
                    continue
                why = _why_not(imported, name, package, public[package])
                if why:
                    found.append(f"{path.relative_to(root)}:{line}: {why}")
    return found


def import_circles(root: Path) -> list[list[str]]:
    """Every circle of imports among the packages' modules, each as its sorted modules."""
    graph: dict[str, set[str]] = {}
    for path in _sources(root):
        module = _module_name(root, path)
        if any(_within(module, package) for package in PACKAGES):
            graph[module] = {
                imported
                for _, imported, _ in imports_of(root, path)
                if imported != module and any(_within(imported, p) for p in PACKAGES)
            }
    circles = []
    for strongly_connected in _components(graph):
        if len(strongly_connected) > 1:
            circles.append(sorted(strongly_connected))
    return sorted(circles)


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components: modules that reach each other both ways."""
    reach = {module: _reachable(graph, module) for module in graph}
    components: list[set[str]] = []
    for module in sorted(graph):
        if not any(module in component for component in components):
            components.append({other for other in reach[module] if module in reach[other]})
    return components


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for following in graph.get(todo.pop(), ()):
            if following not in seen:
                seen.add(following)
                todo.append(following)
    return seen


def test_code_outside_a_package_imports_only_its_public_surface() -> None:
    assert surface_violations(REPO_ROOT) == []


def test_no_circle_of_imports_in_the_packages() -> None:
    assert import_circles(REPO_ROOT) == []


def test_each_package_names_existing_public_submodules_and_imports_none() -> None:
    for package in PACKAGES:
        public = public_submodules(REPO_ROOT, package)
        assert public, f"{package}.__all__ is missing"
        assert public == sorted(public), package
        for name in public:
            assert not name.startswith("_"), (package, name)
            assert _is_module(REPO_ROOT, f"{package}.{name}"), (package, name)
        init = REPO_ROOT.joinpath(*package.split("."), "__init__.py")
        imported = {module for _, module, _ in imports_of(REPO_ROOT, init)}
        assert imported <= {"__future__"}, (package, imported)


def test_importing_the_packages_loads_none_of_their_modules() -> None:
    code = (
        "import sys\n"
        f"for package in {PACKAGES!r}: __import__(package)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({PACKAGES!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == repr(sorted(PACKAGES))


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


def test_forbidden_imports_and_circles_are_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "gdk_geo/__init__.py": "",
            "gdk_geo/registry/__init__.py": '__all__ = ["client"]\n',
            "gdk_geo/registry/client.py": "from .wire import send\n",
            "gdk_geo/registry/wire.py": "def f():\n    from gdk_geo.registry import client\n",
            "gdk_geo/primary/__init__.py": '__all__ = ["app"]\n',
            "gdk_geo/primary/app.py": "from gdk_geo.registry.client import _pool, Client\n",
            "gdk_geo/secondary/__init__.py": "__all__ = []\n",
            "gdk_geo/status.py": "from gdk_geo.registry import wire\nimport gdk_geo.primary\n",
            "tests/test_x.py": "def t():\n    import gdk_geo.secondary.sync\n",
        },
    )
    assert surface_violations(root) == [
        "gdk_geo/primary/app.py:1: _pool is private to gdk_geo.registry.client",
        "gdk_geo/status.py:1: gdk_geo.registry.wire is not in gdk_geo.registry.__all__",
        "tests/test_x.py:2: gdk_geo.secondary.sync is not in gdk_geo.secondary.__all__",
    ]
    assert import_circles(root) == [["gdk_geo.registry.client", "gdk_geo.registry.wire"]]
