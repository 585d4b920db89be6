"""Named nodes (`geo.nodes.<name>`), the primary they start with, and recorded roles.

Rendered for real into a scratch project (no Docker needed: these are the files every
container and service reads). The two-node form is covered by the rest of the suite; here
it is checked only for what is new: it is two nodes named primary and secondary.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import seed_secrets, write_gdk_yml
from ruamel.yaml import YAML

from gdk_geo.doctor import checks, local_checks
from gdk_geo.errors import ConfigError
from gdk_geo.ops import lifecycle
from gdk_geo.project import Project, roles
from gdk_geo.render import drift
from gdk_geo.runtime import services

THREE_NODES = """\
docker:
  container_prefix: gdkgeo-named
geo:
  primary_node: dc2
  nodes:
    dc1:
      port: 4101
      registry:
        port: 4201
    dc2:
      port: 4102
      registry:
        port: 4202
    dc3:
      port: 4103
      registry:
        port: 4203
      registry_replication:
        max_concurrent_blobs: 2
"""


def _project(root: Path, text: str) -> Project:
    write_gdk_yml(root, text)
    seed_secrets(root)
    return Project(root)


def _yaml(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def _render(project: Project) -> lifecycle.Reconfigured:
    return lifecycle.reconfigure(project, check_in_use=False)


def test_three_named_nodes_render_one_primary_and_two_secondaries(tmp_path: Path) -> None:
    project = _project(tmp_path, THREE_NODES)
    done = _render(project)
    cfg = project.load()
    # the primary (dc2, not the first node) makes both pairs, and each is copied to the two
    # secondaries
    assert done.certificates.certificate == project.node(cfg, "dc2").certificate
    assert done.certificates.copied_to == 2 and done.signing_pair.copied_to == 2
    assert cfg.node_names == ("dc1", "dc2", "dc3")
    assert [n.name for n in cfg.secondaries] == ["dc1", "dc3"]
    for name in cfg.node_names:
        assert (tmp_path / ".gdk-geo" / name / "config" / "gitlab.yml").exists()
    primary = _yaml(project.node(cfg, "dc2").gitlab_yml)
    assert primary["geo"]["primary"] is True and "event_log" in primary["geo"]
    assert "notifications" in _yaml(project.node(cfg, "dc2").registry_config)
    for name in ("dc1", "dc3"):
        gitlab = _yaml(project.node(cfg, name).gitlab_yml)
        assert gitlab["geo"]["primary"] is False
        assert gitlab["geo"]["primary_node_url"] == "http://localhost:4102"
        assert gitlab["geo"]["registry_replication"]["primary_api_url"] == (
            "https://localhost:4202"
        )
        assert "notifications" not in _yaml(project.node(cfg, name).registry_config)
    dc3 = _yaml(project.node(cfg, "dc3").gitlab_yml)["geo"]["registry_replication"]
    assert dc3["max_concurrent_blobs"] == 2
    assert cfg.listeners["geo.nodes.dc3.registry.port"] == 4203
    # every node serves the one certificate pair
    pairs = {project.node(cfg, n).certificate.read_bytes() for n in cfg.node_names}
    assert len(pairs) == 1


def test_recorded_roles_move_the_primary_and_ports_stay_with_their_node(tmp_path: Path) -> None:
    project = _project(tmp_path, THREE_NODES)
    _render(project)
    data_dir = project.data_dir(project.load())
    roles.write(data_dir, roles.Roles(primary="dc3", generation=1, previous="dc2"))
    _render(project)
    cfg = project.load()
    assert cfg.primary_name == "dc3"
    assert cfg.node("dc3").registry_port == 4203 and cfg.node("dc2").registry_port == 4202
    dc2 = _yaml(project.node(cfg, "dc2").gitlab_yml)["geo"]
    assert dc2["primary"] is False and dc2["primary_node_url"] == "http://localhost:4103"
    assert roles.claimed_primaries(
        {n: project.node(cfg, n).gitlab_yml for n in cfg.node_names}
    ) == ["dc3"]
    assert services.module_of(project.node(cfg, "dc3")) == "gdk_geo.primary"
    assert services.module_of(project.node(cfg, "dc2")) == "gdk_geo.secondary"


def test_the_two_node_form_is_two_nodes_named_primary_and_secondary(tmp_path: Path) -> None:
    project = _project(tmp_path, "geo:\n  primary_node: secondary\n")
    _render(project)
    cfg = project.load()
    assert cfg.node_names == ("primary", "secondary")
    assert cfg.primary_name == "secondary"
    # the node named primary keeps its ports (5000) while it is the secondary
    gitlab = _yaml(project.node(cfg, "primary").gitlab_yml)
    assert gitlab["geo"]["primary"] is False and gitlab["registry"]["port"] == 5000
    assert gitlab["geo"]["registry_replication"]["primary_api_url"] == "https://localhost:5001"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (THREE_NODES + "  primary:\n    port: 4000\n", "geo.primary: also given `geo.nodes`"),
        (THREE_NODES.replace("primary_node: dc2", "primary_node: dc9"), "'dc9' is not a node"),
        ("geo:\n  nodes:\n    only:\n      port: 4100\n", "at least two nodes"),
        (THREE_NODES.replace("dc3:", "Bad Name:"), "expected a node name"),
        (THREE_NODES.replace("port: 4203", "port: seventy"), "geo.nodes.dc3.registry.port"),
    ],
)
def test_a_wrong_node_declaration_is_named(tmp_path: Path, text: str, message: str) -> None:
    project = _project(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        project.load()
    assert message in raised.value.what, raised.value.what


def test_two_nodes_that_believe_they_are_primary_fail_the_check(tmp_path: Path) -> None:
    project = _project(tmp_path, THREE_NODES)
    _render(project)
    gitlab_yml = project.node(project.load(), "dc1").gitlab_yml
    gitlab_yml.write_text(gitlab_yml.read_text().replace("primary: false", "primary: true"))
    outcome = local_checks.one_primary(checks.Context(project))
    assert outcome.status == "failed"
    assert "dc1 and dc2 all believe they are primary" in outcome.detail
    lifecycle.reconfigure(project, force=True, check_in_use=False)  # what the fix renders
    assert local_checks.one_primary(checks.Context(project)).status == "passed"


def test_a_fresh_render_is_current_with_the_registry_password(tmp_path: Path) -> None:
    """`geo.check`'s "current" check renders again from the stored secrets: the generated
    registry password is one of them (it was left out, so every gitlab.yml was "stale")."""
    project = _project(tmp_path, "docker:\n  container_prefix: gdkgeo-drift\n")
    _render(project)
    found = drift.render_drift(project, project.load())
    assert found.stale == [] and found.edited == []
