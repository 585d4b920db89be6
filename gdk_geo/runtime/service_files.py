"""Which of this host's Python files the Geo services need, for their image (`services_image`).

The interpreter running the CLI brings its standard library, pruned of what no service
imports (tests, the GUI, installers), and its venv, of which the services use a third: the
distributions they load, found by loading them. Their code is scanned for third-party imports
(those inside functions too: the registry client imports httpx only when it connects), a
child interpreter imports those and the services' entry modules, and every module it then
holds from site-packages names an entry there; the distributions owning those entries, and
the distributions they require, are copied whole from their RECORD, dist-info included.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from gdk_geo.errors import GdkGeoError

# All a service may import (docs/architecture.md), and the modules `-m` starts.
SERVICE_CODE = ("primary", "secondary", "node", "registry", "errors.py", "fsutil.py")
ENTRY_MODULES = ("gdk_geo.primary.app", "gdk_geo.secondary.process")
_STDLIB_PRUNED = {"test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}
_STDLIB_PRUNED |= {"site-packages", "dist-packages"}  # the venv's distributions come alone
_DYNLOAD_PRUNED = ("_tkinter", "_test", "_ctypes_test", "_xxtestfuzz", "xxlimited")
_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(\w+)[\w.]*[ \t]+import\b|import[ \t]+([\w., \t]+))", re.MULTILINE
)
_DISCOVER = """\
import importlib, json, sys
before = set(sys.modules)
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
found = [getattr(m, "__file__", None) for n, m in list(sys.modules.items()) if n not in before]
print(json.dumps([f for f in found if f]))
"""


def walk(directory: Path) -> Iterator[os.DirEntry[str]]:
    """Every file under `directory` in name order, `__pycache__` left out."""
    with os.scandir(directory) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            yield entry
        elif entry.name != "__pycache__":
            yield from walk(Path(entry.path))


def site_dirs() -> list[Path]:
    """The interpreter's site-packages directories (the venv's one, under `.venv`)."""
    return [Path(p) for p in site.getsitepackages() if Path(p).is_dir()]


def bytecode_or_source(name: str) -> bool:
    """Sources, and only the bytecode this interpreter reads (not `.opt-1`, `.opt-2`)."""
    return not name.endswith(".pyc") or name.endswith(f".{sys.implementation.cache_tag}.pyc")


def stdlib_files() -> Iterator[Path]:
    """The standard library, without tests, GUI, installers and site directories."""
    paths = sysconfig.get_paths()
    for directory in dict.fromkeys([paths["stdlib"], paths["platstdlib"]]):
        for parent, dirs, names in os.walk(directory):
            dirs[:] = [d for d in dirs if d not in _STDLIB_PRUNED and not d.startswith("config-")]
            dynload = os.path.basename(parent) == "lib-dynload"
            for name in names:
                path = Path(parent, name)
                skipped = dynload and name.startswith(_DYNLOAD_PRUNED)
                if bytecode_or_source(name) and not skipped and path.exists():
                    yield path


def third_party_imports(root: Path) -> list[str]:
    """The top-level names the services' code in the checkout `root` imports that are neither
    gdk_geo nor stdlib. A regular expression, not `ast`: a twentieth of the time, and the
    services image's digest reads this on every set-up."""
    names: set[str] = set()
    for part in SERVICE_CODE:
        target = root / "gdk_geo" / part
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            for module, listed in _IMPORT.findall(path.read_text()):
                names.update([module] if module else _first_names(listed))
    return sorted(names - set(sys.stdlib_module_names) - {"gdk_geo", "__future__"})


def _first_names(listed: str) -> list[str]:
    """`a.b as c, d` -> [a, d]."""
    return [name.split()[0].split(".")[0] for name in listed.split(",") if name.strip()]


def _imported_entries(root: Path, sites: list[Path]) -> set[str]:
    """The site-packages entries (`jinja2`, `typing_extensions.py`, …) holding a module the
    services load, as a child interpreter in the checkout `root` finds them."""
    found = subprocess.run(
        [sys.executable, "-c", _DISCOVER, *ENTRY_MODULES, *third_party_imports(root)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode:
        raise GdkGeoError(
            f"importing the Geo services with {sys.executable} failed: "
            f"{(found.stderr.strip().splitlines() or ['no output'])[-1]}",
            fix="install the project again: `make bytecode` (or `.venv/bin/pip install -e .`)",
        )
    entries = set()
    for file in map(Path, json.loads(found.stdout)):
        for directory in sites:
            if file.is_relative_to(directory):
                entries.add(file.relative_to(directory).parts[0])
    return entries - {"gdk_geo"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def site_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, its path under site-packages) for each distribution the services load and
    each it requires, unconditionally or by an environment marker (extras are left out).
    Requirements count because some load lazily: uvicorn imports h11 when it serves. An
    entry no RECORD claims is copied as it is."""
    sites = site_dirs()
    entries = _imported_entries(root, sites)
    dists: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions(path=[str(s) for s in sites]):
        dists.setdefault(_canonical(dist.metadata["Name"] or ""), dist)
    dists.pop("gdk-geo", None)
    claimed = {name: {f.parts[0] for f in dist.files or []} for name, dist in dists.items()}
    wanted = [name for name, owned in claimed.items() if owned & entries]
    for name in wanted:  # grows while it is read: the requirements' closure
        for requirement in dists[name].requires or []:
            spec, _, marker = requirement.partition(";")
            required = _canonical(re.split(r"[\s\[(<>=!~]", spec.strip(), maxsplit=1)[0])
            if "extra" not in marker and required in dists and required not in wanted:
                wanted.append(required)
    seen: set[str] = set()
    for name in wanted:
        dist = dists[name]
        for record in dist.files or []:
            path = Path(os.path.normpath(str(dist.locate_file(record))))
            base = next((s for s in sites if path.is_relative_to(s)), None)
            if base and path.is_file() and bytecode_or_source(path.name):
                seen.add(relative := path.relative_to(base).as_posix())
                yield path, relative
    for entry in sorted(entries - set().union(*(claimed[name] for name in wanted))):
        for directory in sites:
            path = directory / entry
            found = [Path(e.path) for e in walk(path)] if path.is_dir() else [path]
            for file in (f for f in found if f.is_file()):
                if (relative := file.relative_to(directory).as_posix()) not in seen:
                    yield file, relative
