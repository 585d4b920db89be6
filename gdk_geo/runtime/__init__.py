"""What runs: the registry image, the node containers, the Geo service processes.

`image` pulls or builds the registry image; `services_image` builds the Geo services' image
(for nodes on other Docker engines) and copies an image from one engine to another; both
build offline with `scratch` (the host files an image FROM scratch needs), the services
image with what `service_files` picks from this host's Python. `containers` creates and
finds each node's registry container (docker SDK, host networking, the project's label);
`services` starts and stops the Geo services with pidfiles and logs; `health` probes them;
`logs` interleaves every log on one time line. Imported lazily: name the module you need.
"""

__all__ = ["containers", "health", "image", "logs", "services", "services_image"]
