"""The four clients a Geo developer uses, driven alike by the client matrix (issue #28).

Each driver runs the real client with TLS verification on, against a project with token
auth, in an environment of its own so that the test leaves nothing behind in the user's or
the system's state:

- Docker: `DOCKER_CONFIG` in the test's tmp (its logins); the images it made or pulled are
  removed by name afterwards. Docker's daemon treats registries on loopback addresses as
  insecure (its default `insecure-registries` is 127.0.0.0/8) and does not verify their
  certificate: that part is the daemon's, not something a client flag changes.
- podman: rootful, with `CONTAINERS_STORAGE_CONF` (a vfs store under tmp, nothing in
  `/var/lib/containers`), `CONTAINERS_CONF` (its run-time files and events under tmp) and
  `REGISTRY_AUTH_FILE` (its logins) of its own; `--cert-dir` the project's trust directory.
- skopeo: `REGISTRY_AUTH_FILE` of its own; `--cert-dir` the trust directory.
- containerd (`ctr`): a namespace of its own (`CONTAINERD_NAMESPACE`), emptied and removed
  afterwards; the flags `geo.login --client containerd` prints (`--hosts-dir`, `--user`).

A command that hangs fails the test at `TIMEOUT`, far above what any of them needs here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from helpers import invoke
from registry_login import credentials

from gdk_geo.ops.login import CLIENTS, containerd_address
from gdk_geo.pki import trust
from gdk_geo.project import Project
from testkit.images import Image, make_image, tar_layer, write_oci_archive, write_oci_layout

TIMEOUT = 300.0
# How each client says the registry refused it: Docker, podman and skopeo print the
# registry's `denied` (or `unauthorized`); ctr the error code of the refusal (containerd
# 1.6: `insufficient_scope: authorization failed`).
REFUSED = re.compile(r"denied|unauthorized|insufficient_scope", re.IGNORECASE)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def small_image() -> Image:
    """A one-file image whose layer is a real tar (the clients that unpack can apply it)."""
    return make_image([tar_layer({"hello.txt": os.urandom(16).hex().encode()})])


class Driver:
    """One client: log in, push a new image, pull by digest, try a push that must fail."""

    name = ""

    def __init__(self, project: Project, tmp: Path) -> None:
        self.project, self.tmp = project, tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        cfg = project.load()
        self.trust_dir = project.trust_dir(cfg)
        self.user, self.password = credentials(project)
        self.env = dict(os.environ)
        self.logged_in: list[str] = []

    @property
    def command(self) -> str:
        return CLIENTS[self.name].command

    def unavailable(self) -> str | None:
        """Why this client cannot run here, or None."""
        if shutil.which(self.command) is None:
            return f"{self.command} is not installed (package {CLIENTS[self.name].package})"
        return None

    def run(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.command, *argv],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )

    def ok(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = self.run(*argv, stdin=stdin)
        assert done.returncode == 0, f"{self.command} {' '.join(argv)}:\n{done.stdout}{done.stderr}"
        return done

    def geo_login(self) -> subprocess.CompletedProcess:
        """`invoke geo.login --client <name>`, in this client's environment."""
        cfg = self.project.load()
        self.logged_in += [cfg.node(n).registry_address for n in cfg.node_names]
        return invoke(self.project.root, "geo.login", "--client", self.name, env=self.env)

    def login_to(self, address: str) -> None:
        """Log in to one more address (the throttling proxy), the password on stdin."""
        argv = ["login", "--username", self.user, "--password-stdin", *self.login_flags()]
        self.ok(*argv, address, stdin=self.password + "\n")
        self.logged_in.append(address)

    def login_flags(self) -> list[str]:
        return ["--cert-dir", str(self.trust_dir)]

    def push_new(self, reference: str) -> str:
        """Make a new image, push it as `reference`, drop the local copy; its digest."""
        raise NotImplementedError

    def pull(self, reference: str) -> None:
        raise NotImplementedError

    def push_as(self, source: str, target: str) -> subprocess.CompletedProcess:
        """Tag the pulled `source` as `target` and push it: the outcome, not asserted."""
        raise NotImplementedError

    def cleanup(self) -> None:
        for address in self.logged_in:
            self.run("logout", address)


class DockerDriver(Driver):
    name = "docker"

    def __init__(self, project: Project, tmp: Path) -> None:
        super().__init__(project, tmp)
        self.env["DOCKER_CONFIG"] = str(tmp / "docker-config")
        self.references: list[str] = []

    def login_flags(self) -> list[str]:
        return []

    def push_new(self, reference: str) -> str:
        rootfs = self.tmp / f"rootfs-{uuid.uuid4().hex[:8]}.tar"
        rootfs.write_bytes(tar_layer({"hello.txt": os.urandom(16).hex().encode()}))
        self.references.append(reference)
        self.ok("import", str(rootfs), reference)
        pushed = self.ok("push", reference).stdout
        self.ok("rmi", reference)  # the pull below then downloads every layer
        return DIGEST.findall(pushed)[-1]

    def pull(self, reference: str) -> None:
        self.references.append(reference)
        self.ok("pull", reference)

    def push_as(self, source: str, target: str) -> subprocess.CompletedProcess:
        self.references.append(target)
        self.ok("tag", source, target)
        return self.run("push", target)

    def cleanup(self) -> None:
        for reference in self.references:
            self.run("rmi", "--force", reference)
        super().cleanup()


class PodmanDriver(Driver):
    name = "podman"

    def __init__(self, project: Project, tmp: Path) -> None:
        super().__init__(project, tmp)
        storage, conf = tmp / "storage.conf", tmp / "containers.conf"
        storage.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp / "root"}"\n'
            f'runroot = "{tmp / "runroot"}"\n'
        )
        conf.write_text(
            f'[engine]\ntmp_dir = "{tmp / "libpod"}"\nevents_logger = "file"\n'
            f'events_logfile_path = "{tmp / "events.log"}"\n'
        )
        self.env |= {
            "CONTAINERS_STORAGE_CONF": str(storage),
            "CONTAINERS_CONF": str(conf),
            "REGISTRY_AUTH_FILE": str(tmp / "auth.json"),
        }
        self.tls = ["--cert-dir", str(self.trust_dir), "--tls-verify=true"]

    def push_new(self, reference: str) -> str:
        rootfs = self.tmp / f"rootfs-{uuid.uuid4().hex[:8]}.tar"
        rootfs.write_bytes(tar_layer({"hello.txt": os.urandom(16).hex().encode()}))
        digest_file = self.tmp / "pushed.digest"
        self.ok("import", str(rootfs), reference)
        self.ok("push", *self.tls, "--digestfile", str(digest_file), reference)
        self.ok("rmi", reference)
        return digest_file.read_text().strip()

    def pull(self, reference: str) -> None:
        self.ok("pull", *self.tls, reference)

    def push_as(self, source: str, target: str) -> subprocess.CompletedProcess:
        self.ok("tag", source, target)
        return self.run("push", *self.tls, target)

    def cleanup(self) -> None:
        self.run("rmi", "--all", "--force")
        super().cleanup()
        shutil.rmtree(self.tmp / "root", ignore_errors=True)


class SkopeoDriver(Driver):
    name = "skopeo"

    def __init__(self, project: Project, tmp: Path) -> None:
        super().__init__(project, tmp)
        self.env["REGISTRY_AUTH_FILE"] = str(tmp / "auth.json")
        self.layout: Path | None = None

    def push_new(self, reference: str) -> str:
        self.layout = write_oci_layout(self.tmp / uuid.uuid4().hex[:8], "v1", small_image())
        digest_file = self.tmp / "pushed.digest"
        self.ok(
            "copy",
            "--dest-cert-dir",
            str(self.trust_dir),
            "--preserve-digests",
            "--digestfile",
            str(digest_file),
            f"oci:{self.layout}:v1",
            f"docker://{reference}",
        )
        return digest_file.read_text().strip()

    def pull(self, reference: str) -> None:
        """Copy to a `dir:` and check the manifest's bytes against the digest named."""
        target = self.tmp / f"pulled-{uuid.uuid4().hex[:8]}"
        self.ok(
            "copy", "--src-cert-dir", str(self.trust_dir), f"docker://{reference}", f"dir:{target}"
        )
        digest = "sha256:" + hashlib.sha256((target / "manifest.json").read_bytes()).hexdigest()
        assert reference.endswith("@" + digest), (reference, digest)

    def push_as(self, source: str, target: str) -> subprocess.CompletedProcess:
        return self.run(
            "copy",
            "--src-cert-dir",
            str(self.trust_dir),
            "--dest-cert-dir",
            str(self.trust_dir),
            f"docker://{source}",
            f"docker://{target}",
        )


class ContainerdDriver(Driver):
    """ctr with the flags `geo.login --client containerd` printed, run by bash as printed
    (the shell reads the password file for `--user`)."""

    name = "containerd"

    def __init__(self, project: Project, tmp: Path) -> None:
        super().__init__(project, tmp)
        self.env["CONTAINERD_NAMESPACE"] = f"gdkgeo-test-{uuid.uuid4().hex[:8]}"
        self.flags = ""

    def unavailable(self) -> str | None:
        missing = super().unavailable()
        if missing:
            return missing
        if address := containerd_address():
            self.env["CONTAINERD_ADDRESS"] = address
        version = subprocess.run(
            ["ctr", "version"], env=self.env, capture_output=True, text=True, timeout=30
        )
        if version.returncode != 0:
            return f"ctr cannot reach containerd: {version.stderr.strip()}"
        return None

    def geo_login(self) -> subprocess.CompletedProcess:
        done = invoke(self.project.root, "geo.login", "--client", "containerd", env=self.env)
        for line in done.stdout.splitlines():
            line = line.strip()
            if line.startswith("ctr images push "):
                self.flags = line.removeprefix("ctr images push ").rsplit(" ", 1)[0]
        return done

    def login_to(self, address: str) -> None:
        """containerd keeps no login: a hosts dir naming `address` replaces the project's."""
        hosts = self.tmp / "proxy-trust"
        trust.write_client_trust(hosts, (self.trust_dir / "ca.crt").read_bytes(), [address])
        self.flags = re.sub(r"--hosts-dir \S+", f"--hosts-dir {hosts / 'hosts.d'}", self.flags)

    def ctr(self, line: str) -> subprocess.CompletedProcess:
        """A ctr command line run by bash (for the `$(cat …)` in `--user`)."""
        return subprocess.run(
            ["bash", "-c", f"ctr {line}"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )

    def ctr_ok(self, line: str) -> subprocess.CompletedProcess:
        done = self.ctr(line)
        assert done.returncode == 0, f"ctr {line}:\n{done.stdout}{done.stderr}"
        return done

    def push_new(self, reference: str) -> str:
        image = small_image()
        archive = write_oci_archive(self.tmp / f"{uuid.uuid4().hex[:8]}.tar", reference, image)
        self.ok("images", "import", str(archive))
        self.ctr_ok(f"images push {self.flags} {reference}")
        self.ok("images", "rm", "--sync", reference)
        return image.digest

    def pull(self, reference: str) -> None:
        self.ctr_ok(f"images pull {self.flags} {reference}")

    def push_as(self, source: str, target: str) -> subprocess.CompletedProcess:
        self.ok("images", "tag", source, target)
        return self.ctr(f"images push {self.flags} {target}")

    def cleanup(self) -> None:
        """Every image and blob of the test's namespace, then the namespace itself."""
        names = self.run("images", "ls", "--quiet").stdout.split()
        if names:
            self.run("images", "rm", "--sync", *names)
        blobs = [line.split()[0] for line in self.run("content", "ls", "--quiet").stdout.split()]
        if blobs:
            self.run("content", "rm", *blobs)
        removed = self.run("namespaces", "rm", self.env["CONTAINERD_NAMESPACE"])
        assert removed.returncode == 0, removed.stderr


DRIVERS: dict[str, type[Driver]] = {
    driver.name: driver for driver in (DockerDriver, PodmanDriver, SkopeoDriver, ContainerdDriver)
}
