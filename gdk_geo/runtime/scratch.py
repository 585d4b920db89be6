"""Images built FROM scratch out of this host's own files, for engines that cannot pull.

No base image can be pulled where gdk-geo builds offline, so an image is the files a
program needs, copied from the host: the program, the shared libraries `ldd` names for it
and the loader, laid out at their host paths (so the loader and any RUNPATH find them
unchanged). The registry image (`image.py`) and the services image (`services_image.py`)
both build that way; this module is the one place that knows how: the `ldd` walk, the tar
build context and the build call.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from gdk_geo.errors import GdkGeoError


def shared_libraries(*binaries: Path) -> list[Path]:
    """The absolute paths `ldd` lists for `binaries` (libraries and the loader), each once.

    One `ldd` call for them all: the services image asks for a hundred extension modules.
    A static binary, or a library `ldd` cannot find (`=> not found`), adds nothing.
    """
    if not binaries:
        return []
    try:
        out = subprocess.run(
            ["ldd", *map(str, binaries)], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise GdkGeoError("`ldd` is not installed", fix="apt-get install libc-bin") from None
    found = re.findall(r"(/\S+)\s+\(0x[0-9a-f]+\)", out.stdout)
    return [Path(p) for p in dict.fromkeys(found)]


def add_file(tar: tarfile.TarFile, source: Path, arcname: str, mode: int = 0o755) -> None:
    """`source` at `arcname`, streamed (libpython alone is tens of MB), with its mtime.

    Symlinks are followed: the image gets the real bytes. The mtime is kept because a
    `.pyc` is valid only while its source's mtime is the one it records.
    """
    stat = source.stat()
    info = tarfile.TarInfo(arcname)
    info.size, info.mode, info.mtime = stat.st_size, mode, int(stat.st_mtime)
    with source.open("rb") as handle:
        tar.addfile(info, handle)


def add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes, mode: int = 0o644) -> None:
    """A file made of `data`."""
    info = tarfile.TarInfo(arcname)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, arcname: str, mode: int = 0o755) -> None:
    """A directory (parents of files need none: the engine makes them, 0755)."""
    info = tarfile.TarInfo(arcname)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def add_symlink(tar: tarfile.TarFile, arcname: str, target: str) -> None:
    """A symbolic link to `target`."""
    info = tarfile.TarInfo(arcname)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def build_image(
    client: docker.DockerClient,
    tag: str,
    write: Callable[[tarfile.TarFile], None],
    *,
    source: str,
    fix: str,
) -> None:
    """Build `tag` from the context `write` puts in a tar (its `Dockerfile` included).

    The context goes through a temporary file, not memory: the services' base is a hundred
    MB. A refused build is a `GdkGeoError` naming `source` (what the image is made of) and
    `fix`.
    """
    with tempfile.TemporaryFile() as context:
        with tarfile.open(fileobj=context, mode="w") as tar:
            write(tar)
        context.seek(0)
        try:
            client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            raise GdkGeoError(f"building {tag} from {source} failed: {exc}", fix=fix) from None
