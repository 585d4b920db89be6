"""The primary's Geo service: registry notifications in, the Geo event log out.

`python -m gdk_geo.primary --config <primary root>/config/gitlab.yml` runs it.
"""
