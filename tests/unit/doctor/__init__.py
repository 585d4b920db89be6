"""gdk_geo.doctor: the checks' logic and the tracking database diagnosis."""
