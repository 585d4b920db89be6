"""A WAN between Geo nodes that one can shape: a userspace TCP relay on the path.

The kernel's `netem` is not available everywhere (containers, kernels built without it), so a
link's latency, jitter, loss, bandwidth and partitions are played by a relay process that
the nodes reach each other through. `shaping` holds what a link does (`Shaping`) and reads
it from command-line text; `spec` is the file the relay reads (its routes and shaping);
`process` starts, finds, reloads and stops the relay (`relay`, run as `python -m
gdk_geo.link.relay --spec FILE`, with `pipe` carrying one connection's bytes: neither is
imported from outside); `probe` measures a round trip through it. Imported lazily: name the
module you need.
"""

__all__ = ["probe", "process", "shaping", "spec"]
