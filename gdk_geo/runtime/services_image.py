"""The Geo services' image, built offline, for nodes on other Docker engines (sites).

On a site the bundled services (`python -m gdk_geo.primary|secondary --config gitlab.yml`)
run as containers. No base image can be pulled, so, like the offline registry image, this
one is built FROM scratch out of what this host already runs (`scratch.py`): the
interpreter running the CLI at its host path, the libraries `ldd` names for it and for every
extension module, the loader, the standard library pruned of what a service never imports,
the distributions the services import from the venv (`/opt/gdk-geo/site-packages`), and the
checkout's `gdk_geo/` and `templates/` (`/opt/gdk-geo`).

Two images, so that a code edit rebuilds a layer of a megabyte rather than a hundred:
`gdk-geo/services-base:<digest>` (interpreter, libraries, site-packages) and
`gdk-geo/services:<digest>` FROM it (the project's code). Each tag is a digest of what the
image holds, so an edited `.py` or template names a new image and `geo.restart` runs the
checkout's code, while an unchanged checkout finds its image by name and builds nothing:
the digest reads the project's files (a few hundred KB) and only stats site-packages. The
images carry no project label: every project on an engine shares them.

`copy_image` puts an image on another engine: `docker save | docker load`, streamed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from gdk_geo.errors import GdkGeoError
from gdk_geo.runtime import scratch, service_files
from gdk_geo.runtime.image import Progress, Step, messages

REPOSITORY = "gdk-geo/services"
BASE_REPOSITORY = "gdk-geo/services-base"
DIGEST_LABEL = "org.gdk-geo.services-digest"
PYTHON = "/usr/local/bin/python3"  # the entrypoint: a link to the interpreter's host path
APP_DIR = "/opt/gdk-geo"  # gdk_geo/ and templates/ side by side, as in the checkout
SITE_DIR = f"{APP_DIR}/site-packages"
SERVICES = ("gdk_geo.primary", "gdk_geo.secondary")
# The checkout whose code the image runs (a test points it at a copy).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# glibc opens libgcc_s by name when a thread exits through pthread_exit, which ldd cannot
# see; without it a service whose daemon thread outlives shutdown aborts.
_DLOPENED = ("libgcc_s.so.1",)
_ETC = {
    "passwd": b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n",
    "group": b"root:x:0:\nnogroup:x:65534:\n",
    "nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files dns\n",
}
_BASE_DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
ENV PYTHONHOME="{home}" PYTHONPATH="{app}:{site}" PYTHONUTF8=1 PATH=/usr/local/bin
WORKDIR {app}
LABEL {label}="{digest}"
ENTRYPOINT ["{python}"]
"""
_DOCKERFILE = 'FROM {base}\nCOPY rootfs/ /\nLABEL {label}="{digest}"\n'


def service_command(module: str, gitlab_yml: str) -> list[str]:
    """The container `command=` that runs `module` (one of `SERVICES`) on its node's
    `gitlab.yml` (a path inside the container): the image's entrypoint is the interpreter."""
    if module not in SERVICES:
        raise ValueError(f"{module!r} is not a Geo service: one of {SERVICES}")
    return ["-m", module, "--config", gitlab_yml]


def base_digest(root: Path | None = None) -> str:
    """The base image's fingerprint: the interpreter (path, version, size, mtime), the code
    that lays the image out, the third-party names the services import, and each
    site-packages file's path, size and mtime. Stats, not contents: a pip install changes
    them, and reading 160 MB on every set-up is not cheap."""
    interpreter = Path(sys.executable).resolve()
    info = interpreter.stat()
    digest = hashlib.sha256(
        f"{interpreter}\0{sys.version}\0{info.st_size}\0{info.st_mtime_ns}\n".encode()
    )
    for code in (Path(__file__), Path(scratch.__file__), Path(service_files.__file__)):
        digest.update(code.read_bytes())
    digest.update(" ".join(service_files.third_party_imports(root or PROJECT_ROOT)).encode())
    for directory in service_files.site_dirs():
        for entry in service_files.walk(directory):
            found = entry.stat(follow_symlinks=False)
            digest.update(f"{entry.path}\0{found.st_size}\0{found.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _project_files(root: Path) -> list[str]:
    """What the services image adds to the base, relative to `root`: `gdk_geo/**/*.py` and
    everything in `templates/`."""
    return [
        os.path.relpath(entry.path, root)
        for top in ("gdk_geo", "templates")
        for entry in service_files.walk(root / top)
        if top == "templates" or entry.name.endswith(".py")
    ]


def _digest_of(root: Path, base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for relative in _project_files(root):
        data = (root / relative).read_bytes()
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def services_digest(root: Path | None = None) -> str:
    """The services image's digest: the base's, then each project file's path and bytes."""
    return _digest_of(root or PROJECT_ROOT, base_digest(root))


def _has(client: docker.DockerClient, name: str, digest: str) -> bool:
    try:
        return (client.images.get(name).labels or {}).get(DIGEST_LABEL) == digest
    except docker.errors.ImageNotFound:
        return False


def ensure_services_image(client: docker.DockerClient, progress: Progress | None = None) -> str:
    """The name of the services image for this checkout, on `client`, built if absent (the
    base too, when the interpreter or site-packages changed). `progress` hears of a build."""
    progress = progress or messages(print)
    root = PROJECT_ROOT
    base_digest_now = base_digest(root)
    digest = _digest_of(root, base_digest_now)
    name = f"{REPOSITORY}:{digest[:12]}"
    if _has(client, name, digest):
        return name
    base = f"{BASE_REPOSITORY}:{base_digest_now[:12]}"
    interpreter = Path(sys.executable).resolve()
    if not _has(client, base, base_digest_now):
        progress(Step(f"building {base} offline from {interpreter} and its site-packages"))
        scratch.build_image(
            client,
            base,
            lambda tar: _write_base(tar, root, base_digest_now),
            source=str(interpreter),
            fix="check `docker info`, and that `ldd` and the venv work (`make bytecode`)",
        )
    progress(Step(f"building {name} from {root}"))
    scratch.build_image(
        client,
        name,
        lambda tar: _write_services(tar, root, base, digest),
        source=str(root),
        fix="check `docker info` and `docker image ls gdk-geo/services-base`",
    )
    return name


def _write_services(tar: tarfile.TarFile, root: Path, base: str, digest: str) -> None:
    """The project's layer: its sources and templates, and the bytecode `make bytecode`
    compiled (kept with the sources' mtimes, so Python uses it while it is current)."""
    dockerfile = _DOCKERFILE.format(base=base, label=DIGEST_LABEL, digest=digest)
    scratch.add_bytes(tar, "Dockerfile", dockerfile.encode())
    for relative in _project_files(root):
        scratch.add_file(tar, root / relative, f"rootfs{APP_DIR}/{relative}", 0o644)
        if relative.endswith(".py"):
            cached = Path(importlib.util.cache_from_source(str(root / relative)))
            if cached.is_file():
                arcname = f"rootfs{APP_DIR}/{os.path.relpath(cached, root)}"
                scratch.add_file(tar, cached, arcname, 0o644)


def _write_base(tar: tarfile.TarFile, root: Path, digest: str) -> None:
    """The base: interpreter, standard library, the services' distributions, libraries."""
    interpreter = Path(sys.executable).resolve()
    home = sys.base_prefix
    if sys.base_exec_prefix != sys.base_prefix:
        home = f"{sys.base_prefix}:{sys.base_exec_prefix}"
    dockerfile = _BASE_DOCKERFILE.format(
        home=home, app=APP_DIR, site=SITE_DIR, label=DIGEST_LABEL, digest=digest, python=PYTHON
    )
    scratch.add_bytes(tar, "Dockerfile", dockerfile.encode())
    for name, data in _ETC.items():
        scratch.add_bytes(tar, f"rootfs/etc/{name}", data)
    scratch.add_dir(tar, "rootfs/tmp", 0o1777)
    scratch.add_dir(tar, "rootfs/root", 0o700)
    scratch.add_file(tar, interpreter, f"rootfs{interpreter}")
    if str(interpreter) != PYTHON:
        scratch.add_symlink(tar, f"rootfs{PYTHON}", str(interpreter))
    modules: list[Path] = []  # extension modules, whose libraries ldd names
    files = [(path, f"rootfs{path}") for path in service_files.stdlib_files()]
    venv = service_files.site_files(root)
    files += [(path, f"rootfs{SITE_DIR}/{relative}") for path, relative in venv]
    for path, arcname in files:
        scratch.add_file(tar, path, arcname, stat.S_IMODE(path.stat().st_mode))
        if ".so" in path.suffixes:
            modules.append(path)
    libraries = scratch.shared_libraries(interpreter, *modules)
    libc_dirs = {library.parent for library in libraries if library.name.startswith("libc.so")}
    extra = [d / name for d in libc_dirs for name in _DLOPENED if (d / name).is_file()]
    for library in dict.fromkeys([*libraries, *extra]):
        scratch.add_file(tar, library, f"rootfs{library}")


def _engine(client: docker.DockerClient) -> str:
    """How a message names an engine: its socket, its ssh:// host or its URL.

    An ssh:// engine's base URL is docker-py's placeholder `http+docker://ssh`, the same for
    every ssh host: the host is the adapter's `ssh_host` (`user@host:port`), and the message
    and its `docker -H` fix need it.
    """
    url = str(client.api.base_url)
    adapter = client.api.get_adapter(url)
    socket_path = getattr(adapter, "socket_path", None)
    if socket_path:
        return f"unix://{socket_path}"
    ssh_host = getattr(adapter, "ssh_host", None)
    return f"ssh://{ssh_host}" if ssh_host else url


def copy_image(
    name: str,
    source: docker.DockerClient,
    target: docker.DockerClient,
    progress: Progress | None = None,
) -> bool:
    """Make image `name` present on `target` as it is on `source`: `docker save` streamed
    into `docker load`, chunk by chunk (the image is a hundred MB). False, and nothing
    sent, when `target` already has `name` with the same image ID."""
    progress = progress or messages(print)
    try:
        image = source.images.get(name)
    except docker.errors.ImageNotFound:
        raise GdkGeoError(
            f"{name} is not on {_engine(source)}: there is nothing to copy",
            fix="build it first (`ensure_services_image`)",
        ) from None
    where = _engine(target)
    fix = f"check that the engine answers and has room: `docker -H {where} system df`"
    try:
        if target.images.get(name).id == image.id:
            return False
    except docker.errors.ImageNotFound:
        pass
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise GdkGeoError(f"{where} did not answer: {exc}", fix=fix) from None
    total, sent = int(image.attrs.get("Size") or 0), 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for chunk in image.save(named=name if name in image.tags else True):
            sent += len(chunk)
            progress(Step(f"copying {name} to {where}", sent, max(total, sent)))
            yield chunk

    try:
        target.images.load(chunks())
        loaded = target.images.get(name).id
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise GdkGeoError(f"{where} refused {name}: {exc}", fix=fix) from None
    if loaded != image.id:
        raise GdkGeoError(
            f"{where} holds {name} as {loaded}, not {image.id}, after loading it", fix=fix
        )
    return True
