"""gdk_geo.render: rendered files against golden copies, secrets, named nodes."""
