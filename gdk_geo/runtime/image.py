"""The registry image every node runs.

The configured image (default `registry:2`) is used when the engine has it or can pull it.
Where the engine cannot pull it (offline, or no access to its registry), we build
`gdk-geo/registry:local` offline from a local `registry` binary (Debian's
`/usr/bin/docker-registry`): the binary, the shared libraries `ldd` names and the loader,
in a scratch image (`scratch.py` builds it). Both images accept the same command (the
config path), so the rest of the project never cares which one it got.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from gdk_geo.errors import GdkGeoError
from gdk_geo.runtime import scratch

OFFLINE_IMAGE = "gdk-geo/registry:local"
CONFIG_PATH_IN_CONTAINER = "/etc/docker/registry/config.yml"
BINARY_LABEL = "org.gdk-geo.registry-binary-sha256"
# The images whose pull failed when the offline image was built (JSON list): the record that
# keeps every later setup from trying the same pull again. `geo.image --pull` retries.
PULL_FAILED_LABEL = "org.gdk-geo.pull-failed"
MAX_RECORDED = 8

# A minimal name-service setup so the Go binary resolves host.docker.internal from the
# /etc/hosts Docker writes into the container.
_NSSWITCH = b"hosts: files dns\n"
_DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
LABEL {label}="{digest}"
LABEL {pull_label}={pull_failed}
ENTRYPOINT ["/bin/registry", "serve"]
CMD ["{config}"]
"""


@dataclass(frozen=True)
class Step:
    """One progress report of a long step: what happens now and, for a pull, how far it got.

    `done` and `total` are bytes summed over the layers seen so far (None for a build, which
    has no measure), so a caller can draw a real bar where it has a terminal and print just
    the message where it has a log.
    """

    message: str
    done: int | None = None
    total: int | None = None


Progress = Callable[[Step], None]


def messages(say: Callable[[str], None]) -> Progress:
    """A `Progress` that passes each new message to `say` once (for pipes and logs)."""
    last: list[str] = []

    def report(step: Step) -> None:
        if last != [step.message]:
            last[:] = [step.message]
            say(step.message)

    return report


@dataclass(frozen=True)
class ImageResult:
    """Which image the nodes will run, and how we got it (for the summary and `geo.status`)."""

    name: str
    how: str  # "present", "pulled" or "built offline"


def _write_context(
    tar: tarfile.TarFile, binary: Path, digest: str, pull_failed: list[str] | None = None
) -> None:
    """The offline image's build context: its Dockerfile and rootfs (`scratch.build_image`)."""
    dockerfile = _DOCKERFILE.format(
        label=BINARY_LABEL,
        digest=digest,
        config=CONFIG_PATH_IN_CONTAINER,
        pull_label=PULL_FAILED_LABEL,
        pull_failed=json.dumps(json.dumps(pull_failed or [])),
    )
    scratch.add_bytes(tar, "Dockerfile", dockerfile.encode())
    for directory in (
        "rootfs",
        "rootfs/bin",
        "rootfs/etc",
        "rootfs/etc/docker",
        "rootfs/etc/docker/registry",
        "rootfs/var/lib/registry",
    ):
        scratch.add_dir(tar, directory)
    scratch.add_dir(tar, "rootfs/tmp", 0o1777)
    scratch.add_bytes(tar, "rootfs/etc/nsswitch.conf", _NSSWITCH)
    scratch.add_file(tar, binary, "rootfs/bin/registry")
    for library in scratch.shared_libraries(binary):
        scratch.add_file(tar, library, f"rootfs{library}")


def build_offline_image(
    client: docker.DockerClient,
    binary: Path,
    progress: Progress | None = None,
    pull_failed: str = "",
) -> str:
    """Build `gdk-geo/registry:local` from `binary`; reuse it while the binary is unchanged
    and it records `pull_failed` (the image that could not be pulled) among its failures."""
    progress = progress or messages(print)
    recorded = failed_pulls(client)
    failed = recorded
    if pull_failed and pull_failed not in recorded:  # a few are enough: the latest kept
        failed = [*recorded, pull_failed][-MAX_RECORDED:]
    digest = _sha256_of(binary)
    try:
        labels = client.images.get(OFFLINE_IMAGE).labels or {}
        if labels.get(BINARY_LABEL) == digest and failed == recorded:
            return OFFLINE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    progress(Step(f"building {OFFLINE_IMAGE} offline from {binary}"))
    scratch.build_image(
        client,
        OFFLINE_IMAGE,
        lambda tar: _write_context(tar, binary, digest, failed),
        source=str(binary),
        fix=f"check `docker info` and that the binary runs: `{binary} --version`",
    )
    return OFFLINE_IMAGE


def failed_pulls(client: docker.DockerClient) -> list[str]:
    """The images the offline image records as not pullable, oldest first ([]: no record)."""
    try:
        labels = client.images.get(OFFLINE_IMAGE).labels or {}
        recorded = json.loads(labels.get(PULL_FAILED_LABEL, "[]"))
    except (docker.errors.ImageNotFound, ValueError):
        return []
    return [str(name) for name in recorded] if isinstance(recorded, list) else []


def _offline_is_current(client: docker.DockerClient, binary: Path) -> bool:
    """Whether the offline image exists and was built from `binary` as it is now."""
    try:
        labels = client.images.get(OFFLINE_IMAGE).labels or {}
    except docker.errors.ImageNotFound:
        return False
    return binary.is_file() and labels.get(BINARY_LABEL) == _sha256_of(binary)


def _sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def has_image(client: docker.DockerClient, name: str) -> bool:
    """Whether the engine holds the image `name` (by tag or id)."""
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(client: docker.DockerClient, name: str, progress: Progress) -> str | None:
    """Pull `name`, reporting bytes downloaded over all layers; None, or why it failed."""
    repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
    repository = repository or name
    layers: dict[str, tuple[int, int]] = {}  # layer id -> (bytes done, bytes total)
    try:
        for line in client.api.pull(repository, tag or "latest", stream=True, decode=True):
            if "error" in line:
                return str(line["error"])
            if _track_layer(layers, line):
                done = sum(d for d, _ in layers.values())
                total = sum(t for _, t in layers.values())
                progress(Step(f"pulling {name}", done, total))
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    return None


def _track_layer(layers: dict[str, tuple[int, int]], line: dict) -> bool:
    """Update `layers` from one line of the pull stream; True when the byte counts moved.

    Docker reports `Downloading` with `progressDetail` {current, total} per layer, then
    `Download complete`; extraction has its own counts, which we leave out of the bar.
    """
    layer, status = line.get("id"), line.get("status", "")
    if not layer:
        return False
    detail = line.get("progressDetail") or {}
    if status == "Downloading" and detail.get("total"):
        layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
        return True
    if status in ("Download complete", "Pull complete", "Already exists") and layer in layers:
        total = layers[layer][1]
        layers[layer] = (total, total)
        return True
    return False


def ensure_registry_image(
    client: docker.DockerClient,
    image: str,
    binary: Path,
    progress: Progress | None = None,
    *,
    pull: bool = False,
) -> ImageResult:
    """The image to run: `image` if present or pullable, else one built offline from `binary`.

    A pull is tried once: when it fails, the offline image records that, and later calls
    use it without asking the network again (each `geo.setup` did). `pull` tries anyway,
    and pulls a present `image` again too (`invoke geo.image --pull`).
    `progress` hears of each step (default: its messages, printed).
    """
    progress = progress or messages(print)
    if not pull and has_image(client, image):
        return ImageResult(image, "present")
    if not pull and image in failed_pulls(client) and _offline_is_current(client, binary):
        return ImageResult(OFFLINE_IMAGE, "built offline")
    progress(Step(f"pulling {image}"))
    pull_error = _pull(client, image, progress)
    if pull_error is None and has_image(client, image):
        return ImageResult(image, "pulled")
    if binary.is_file():
        progress(Step(f"could not pull {image} ({pull_error}); using the local registry binary"))
        built = build_offline_image(client, binary, progress, pull_failed=image)
        return ImageResult(built, "built offline")
    raise GdkGeoError(
        f"registry image {image} is not present and could not be pulled ({pull_error}), "
        f"and there is no registry binary at {binary}",
        fix=f"either make the image available (`docker pull {image}` or `docker load`) "
        "or install a registry binary (`apt-get install docker-registry`) and point "
        "`registry.binary` in gdk.yml at it",
    )
