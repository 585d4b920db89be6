"""gdk_geo.registry: references, tokens, the token service, backoff, HTTP clients."""
