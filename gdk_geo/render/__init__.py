"""Rendering: each node's `registry/config.yml` and `config/gitlab.yml` from `templates/`.

`rendering` writes them atomically, diffs them with secrets masked, backs them up and never
overwrites a hand edit silently; `drift` says whether what is on disk is what gdk.yml asks
for now. The rendering names are re-exported here: `from gdk_geo import render`.
"""

from gdk_geo.render.rendering import (
    STATE_FILE,
    Change,
    RenderedFile,
    environment,
    hand_edited,
    node_config_hash,
    render_files,
    template_context,
    write_files,
)

__all__ = [
    "STATE_FILE",
    "Change",
    "RenderedFile",
    "drift",
    "environment",
    "hand_edited",
    "node_config_hash",
    "render_files",
    "template_context",
    "write_files",
]
