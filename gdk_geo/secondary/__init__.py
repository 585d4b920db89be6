"""The secondary's Geo worker: the event feed, tracking, sync, verification, status page.

`python -m gdk_geo.secondary --config <secondary root>/config/gitlab.yml` runs it.
"""

# The submodules code outside the package may import from, and only their public names.
# Named, not imported: `python -m gdk_geo.secondary` and every CLI command that reads the
# tracking database or runs a pass in-process load only what they use. The worker's own
# pieces (`api`, `web`, `blob_placement`, `referrers`, `registry_tokens`, `host_check`)
# are not on the list.
__all__ = [
    "admin",
    "blob_locations",
    "clients",
    "event_feed",
    "passes",
    "process",
    "replicator",
    "repository_index",
    "results",
    "snapshot",
    "status_page",
    "sync",
    "tag_removal",
    "tracking",
    "tracking_schema",
    "verify",
    "worker",
]
