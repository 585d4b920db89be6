"""The Registry HTTP API v2 as the Geo services speak it.

`reference` (the grammar and media types) → `errors` → `transport` (replies, retries) →
`auth` (challenges and tokens) → `client` (the API) → `copy` (blob bytes). Nothing here
imports the rest of gdk_geo: both services and the CLI build on it.
"""
