"""The project's files: node roots, what it started, roles, secrets, ports.

Second stage, after the settings. `paths` lays out each node's root like a GDK root
(`NodePaths`) and finds the project (`Project`); `record` keeps what the project started
(`.gdk-geo-record.json`); `roles` which node is primary (`roles.json`); `links` the links
`geo.link` shapes (`links.json`) and how they route; `secret_store` the generated secrets;
`ports` that every listener has a free port of its own.

The paths' names are re-exported here: `from gdk_geo.project import Project`.
"""

from gdk_geo.project.paths import (
    EVENT_LOG,
    EXAMPLE,
    NODES,
    REPO_ROOT,
    TEMPLATES,
    TRACKING_DB,
    NodePaths,
    Project,
)

__all__ = [
    "EVENT_LOG",
    "EXAMPLE",
    "NODES",
    "REPO_ROOT",
    "TEMPLATES",
    "TRACKING_DB",
    "NodePaths",
    "Project",
    "links",
    "ports",
    "record",
    "roles",
    "secret_store",
]
