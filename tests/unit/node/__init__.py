"""gdk_geo.node: what the services share (the rule for listeners beyond loopback)."""
