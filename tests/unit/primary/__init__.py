"""gdk_geo.primary: the event log and the app in-process."""
