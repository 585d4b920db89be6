"""The Registry HTTP API v2 as the Geo services speak it.

`reference` (the grammar, media types and API paths) → `errors` → `replies` (whole answers
and error bodies) → `auth` (challenges and tokens) → `transport` (the pool, retries with
`backoff`, over `http`'s clients) → `client` (the API) → `copy` (the manifest model and blob
bytes). Nothing here imports the rest of gdk_geo: both services and the CLI build on it
(`http` and `backoff` serve them too).
"""
