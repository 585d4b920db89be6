"""gdk_geo.secondary: the tracking database, the status and admin pages."""
