"""What runs: the images, each node's containers and Geo service, on each node's engine.

`image` pulls or builds the registry image; `services_image` builds the Geo services' image
and copies an image from one engine to another; both build offline with `scratch` (the host
files an image FROM scratch needs), the services image with what `service_files` picks from
this host's Python. `engines` connects to each node's Docker engine; `containers` creates
and finds each node's registry container (docker SDK, host networking, the project's
label); `services` starts and stops the Geo services of nodes on the CLI's engine as
processes, with pidfiles and logs; `sites` and `service_containers` run a node on an engine
of its own (volumes, files put through the API, the service as a container); `placement` is
the one way the tasks reach a node, wherever it runs; `health` probes them; `logs`
interleaves every log on one time line. Imported lazily: name the module you need.
"""

__all__ = [
    "containers",
    "engines",
    "health",
    "image",
    "logs",
    "placement",
    "scratch",
    "service_containers",
    "service_files",
    "services",
    "services_image",
    "sites",
]
