"""The secondary's Geo worker: the event feed, tracking, sync, verification, status page.

`python -m gdk_geo.secondary --config <secondary root>/config/gitlab.yml` runs it.
"""
