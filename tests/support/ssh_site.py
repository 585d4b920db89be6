"""An engine reached over `ssh://`: an sshd in a container on a site's engine.

This machine has no sshd and no `sshd` user, and the tests change nothing of its system
state (no package installed, no user added, nothing in ~/.ssh, nothing left running). So:

- OpenSSH's `sshd` comes from Debian's packages `openssh-server` and `libwrap0`, fetched
  with `apt-get download` (nothing installed) and unpacked with `dpkg -x` into the test's
  temporary directory. Where apt's package lists are empty (a clean CI machine), the lists
  are fetched into that directory too, never into /var/lib/apt.
- sshd runs in a container on the site's engine, from an image built FROM scratch with the
  project's own scratch helpers (`gdk_geo.runtime.scratch`): sshd, `/bin/sh` (dash) and the
  `docker` CLI (what the client runs remotely: `docker system dial-stdio`), their `ldd`
  libraries and the loader; an /etc/passwd with root and the privilege-separation user
  `sshd`, its empty /run/sshd, and a host key and authorized_keys made with `ssh-keygen`.
  The container uses the site's host networking, so it listens at the site's address, and
  the site's socket is bind-mounted at /var/run/docker.sock: this container is the test's
  (its name and label say so), not the product's, which binds nothing on a site.
- The client side is the system's `ssh`, which docker-py runs by name from PATH: a
  wrapper `ssh` first in PATH runs `/usr/bin/ssh -F <the test's ssh_config>`, which names
  the test's key and keeps host keys out of ~/.ssh.

Where the packages or a library sshd needs cannot be had, the test is skipped saying so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from gdk_geo.runtime import scratch

PACKAGES = ("openssh-server", "libwrap0")
PORT = 2222
TEST_LABEL = "org.gdk-geo.test"
SSH = Path("/usr/bin/ssh")

# Root's shell runs the client's command; `sshd` is OpenSSH's privilege-separation user,
# whose home /run/sshd is the empty directory it chroots into.
_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"
# glibc's built-in `files` lookups only: with no nsswitch.conf it would ask for `compat`,
# a module the image does not have.
_NSSWITCH = b"passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
_SSHD_CONFIG = """\
ListenAddress {address}
Port {port}
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /root/.ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
UseDNS no
PidFile none
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
LogLevel VERBOSE
"""
_DOCKERFILE = f"""\
FROM scratch
COPY rootfs/ /
LABEL {TEST_LABEL}=sshd
ENTRYPOINT ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"]
"""


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def _apt_download(into: Path) -> str | None:
    """`apt-get download` the packages into `into`; None, or why it failed. When apt's
    lists do not know them (never updated here), lists of our own are fetched into `into`."""
    done = _run("apt-get", "download", *PACKAGES, cwd=into)
    if done.returncode == 0:
        return None
    lists = into / "apt-lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    own = ("-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={into / 'apt-cache'}")
    (into / "apt-cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    updated = _run("apt-get", *own, "update")
    done = _run("apt-get", *own, "download", *PACKAGES, cwd=into)
    if done.returncode == 0:
        return None
    said = (done.stderr + updated.stderr + done.stdout).splitlines()
    errors = [line for line in said if line.startswith("E:")]  # not the _apt sandbox's W:
    return (errors or said or [f"exit status {done.returncode}"])[-1]


def unpack_sshd(cache: Path) -> Path:
    """The packages unpacked under `cache/root` (fetched once into `cache`), or the test
    skipped saying why they cannot be had."""
    root = cache / "root"
    if (root / "usr/sbin/sshd").is_file():
        return root
    for tool in ("apt-get", "dpkg", "ssh-keygen", "ldd"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not here: sshd cannot be fetched and run for the test")
    if not SSH.is_file():
        pytest.skip(f"no ssh client at {SSH}: docker-py's ssh:// runs the system's ssh")
    cache.mkdir(parents=True, exist_ok=True)
    why = _apt_download(cache)
    if why is not None:
        pytest.skip(f"`apt-get download {' '.join(PACKAGES)}` failed: {why}")
    for package in sorted(cache.glob("*.deb")):
        unpacked = _run("dpkg", "-x", str(package), str(root))
        if unpacked.returncode != 0:
            pytest.skip(f"`dpkg -x {package.name}` failed: {unpacked.stderr.strip()}")
    if not (root / "usr/sbin/sshd").is_file():
        pytest.skip(f"{', '.join(PACKAGES)} unpacked, but there is no usr/sbin/sshd in them")
    return root


@dataclass(frozen=True)
class Keys:
    """The host key, the client's key and their public halves, made by `ssh-keygen`."""

    host: Path
    client: Path

    @classmethod
    def make(cls, where: Path) -> Keys:
        where.mkdir(parents=True, exist_ok=True)
        keys = cls(where / "ssh_host_ed25519_key", where / "id_ed25519")
        for key in (keys.host, keys.client):
            if not key.exists():
                made = _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key))
                assert made.returncode == 0, made.stderr
        return keys


def _libraries(sshd_root: Path, binaries: list[Path]) -> list[tuple[Path, str]]:
    """Each library the binaries need and where it goes in the image: a host library at its
    host path, one of the unpacked packages' (libwrap) at its path in the package. The test
    is skipped when one cannot be found here."""
    package_libs = sshd_root / "usr/lib/x86_64-linux-gnu"
    search = ":".join(str(d) for d in sshd_root.glob("usr/lib/*-linux-gnu"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LD_LIBRARY_PATH", search or str(package_libs))
        missing = _run("ldd", *map(str, binaries)).stdout
        found = scratch.shared_libraries(*binaries)
    absent = sorted({line.split()[0] for line in missing.splitlines() if "not found" in line})
    if absent:
        pytest.skip(f"sshd needs libraries this machine does not have: {', '.join(absent)}")
    placed = []
    for library in found:
        inside = library.relative_to(sshd_root) if library.is_relative_to(sshd_root) else None
        placed.append((library, f"rootfs/{inside}" if inside else f"rootfs{library}"))
    return placed


def _write_context(
    tar: tarfile.TarFile, sshd_root: Path, keys: Keys, address: str, port: int
) -> None:
    """The sshd image's build context (`scratch.build_image`)."""
    sshd, dash = sshd_root / "usr/sbin/sshd", Path(shutil.which("dash") or "/bin/dash")
    docker_cli = Path(shutil.which("docker") or "/usr/bin/docker")
    scratch.add_bytes(tar, "Dockerfile", _DOCKERFILE.encode())
    for directory in ("rootfs", "rootfs/etc", "rootfs/etc/ssh", "rootfs/run", "rootfs/var"):
        scratch.add_dir(tar, directory)
    scratch.add_dir(tar, "rootfs/run/sshd")  # the privilege-separation chroot: root's, 0755
    scratch.add_dir(tar, "rootfs/root", 0o700)
    scratch.add_dir(tar, "rootfs/root/.ssh", 0o700)
    scratch.add_dir(tar, "rootfs/tmp", 0o1777)
    scratch.add_file(tar, sshd, "rootfs/usr/sbin/sshd")
    scratch.add_file(tar, dash, "rootfs/bin/sh")
    scratch.add_file(tar, docker_cli, "rootfs/usr/bin/docker")
    for library, arcname in _libraries(sshd_root, [sshd, dash, docker_cli]):
        scratch.add_file(tar, library, arcname)
    moduli = sshd_root / "etc/ssh/moduli"
    if moduli.is_file():
        scratch.add_file(tar, moduli, "rootfs/etc/ssh/moduli", 0o644)
    scratch.add_bytes(tar, "rootfs/etc/passwd", _PASSWD)
    scratch.add_bytes(tar, "rootfs/etc/group", _GROUP)
    scratch.add_bytes(tar, "rootfs/etc/nsswitch.conf", _NSSWITCH)
    config = _SSHD_CONFIG.format(address=address, port=port)
    scratch.add_bytes(tar, "rootfs/etc/ssh/sshd_config", config.encode())
    scratch.add_file(tar, keys.host, "rootfs/etc/ssh/ssh_host_ed25519_key", 0o600)
    scratch.add_file(tar, keys.host.with_suffix(".pub"), "rootfs/etc/ssh/ssh_host_ed25519_key.pub")
    authorized = keys.client.with_suffix(".pub")
    scratch.add_file(tar, authorized, "rootfs/root/.ssh/authorized_keys", 0o600)


@dataclass(frozen=True)
class SshEngine:
    """An sshd in front of a site's engine: what a node's `docker.host` names, and the
    environment whose `ssh` reaches it with the test's key."""

    docker_host: str  # ssh://root@198.18.N.2:2222
    env: dict[str, str]
    container: str
    image: str


def _client_env(where: Path, keys: Keys) -> dict[str, str]:
    """This process's environment with a wrapper `ssh` first in PATH: `/usr/bin/ssh -F` a
    config of the test's (its key, no host key kept, no prompt), ~/.ssh untouched."""
    config = where / "ssh_config"
    config.write_text(
        "Host *\n"
        f"  IdentityFile {keys.client}\n"
        "  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  BatchMode yes\n"
        "  LogLevel ERROR\n"
        "  ConnectTimeout 10\n"
    )
    bin_dir = where / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {SSH} -F {config} "$@"\n')
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _answers(env: dict[str, str], docker_host: str) -> bool:
    """Whether the Docker CLI reaches the engine through ssh: `docker -H ssh://… version`."""
    try:
        done = subprocess.run(
            ["docker", "-H", docker_host, "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@contextlib.contextmanager
def sshd_on_site(
    site_client: docker.DockerClient,
    site_socket: str,
    address: str,
    where: Path,
    *,
    number: int,
    port: int = PORT,
) -> Iterator[SshEngine]:
    """sshd listening at `address`:`port` in a container on the site's engine, in front of
    that engine (`site_socket`, the path its dockerd serves); removed with its image after."""
    sshd_root = unpack_sshd(where / "packages")
    keys = Keys.make(where / "keys")
    name = f"gdkgeo-test-sshd-{number}"
    image = f"gdkgeo-test/sshd:site{number}"
    with contextlib.suppress(docker.errors.NotFound):
        site_client.containers.get(name).remove(force=True)
    scratch.build_image(
        site_client,
        image,
        lambda tar: _write_context(tar, sshd_root, keys, address, port),
        source=f"sshd from {', '.join(PACKAGES)}",
        fix="see the site engine's log",
    )
    container = site_client.containers.run(
        image,
        name=name,
        detach=True,
        network_mode="host",
        labels={TEST_LABEL: "sshd"},
        volumes={site_socket: {"bind": "/var/run/docker.sock", "mode": "rw"}},
    )
    engine = SshEngine(f"ssh://root@{address}:{port}", _client_env(where, keys), name, image)
    try:
        deadline = time.monotonic() + 30
        while not _answers(engine.env, engine.docker_host):
            container.reload()
            if container.status != "running" or time.monotonic() > deadline:
                logs = container.logs().decode(errors="replace")
                pytest.fail(f"sshd in {name} does not serve {engine.docker_host}:\n{logs}")
            time.sleep(0.5)
        yield engine
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
        with contextlib.suppress(docker.errors.DockerException):
            site_client.images.remove(image, force=True)
