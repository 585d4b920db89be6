"""gdk_geo.cli: the tasks' console and process exit."""
