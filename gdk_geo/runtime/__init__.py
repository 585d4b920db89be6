"""What runs: the images, each node's containers and Geo service, on each node's engine.

`image` pulls or builds the registry image and `services_image` the Geo services' image;
`engines` connects to each node's Docker engine; `containers` creates and finds each node's
registry container (docker SDK, host networking, the project's label); `services` starts and
stops the Geo services of nodes on the CLI's engine as processes, with pidfiles and logs;
`sites` and `service_containers` run a node on an engine of its own (volumes, files put
through the API, the service as a container); `placement` is the one way the tasks reach a
node, wherever it runs; `health` probes them; `logs` interleaves every log on one time line.
Imported lazily: name the module you need.
"""

__all__ = [
    "containers",
    "engines",
    "health",
    "image",
    "logs",
    "placement",
    "service_containers",
    "services",
    "services_image",
    "sites",
]
