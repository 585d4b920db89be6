"""gdk_geo.project: ports."""
