"""The primary's Geo service: registry notifications in, the Geo event log out.

`python -m gdk_geo.primary --config <primary root>/config/gitlab.yml` runs it.
"""

# The submodules code outside the package may import from, and only their public names.
# Named, not imported, so that importing the package loads nothing. `metrics` is the app's
# own.
__all__ = ["app", "eventlog", "triage"]
