"""gdk_geo.runtime: image progress, services' pidfiles, logs."""
