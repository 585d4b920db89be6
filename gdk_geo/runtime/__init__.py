"""What runs: the registry image, the node containers, the Geo service processes.

`image` pulls or builds the registry image; `containers` creates and finds each node's
registry container (docker SDK, host networking, the project's label); `services` starts and
stops the Geo services with pidfiles and logs; `health` probes them; `logs` interleaves
every log on one time line. Imported lazily: name the module you need.
"""

__all__ = ["containers", "health", "image", "logs", "services"]
