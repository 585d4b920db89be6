"""gdk_geo.settings: gdk.yml loading, validation, editing and its docs."""
