"""gdk_geo.pki: the TLS pair and the token signing pair."""
