"""The `geo` invoke collection and its console: flags in, one call, output and exit code.

`tasks` gathers the collection from `tasks_lifecycle`, `tasks_inspect`,
`tasks_replication` and `tasks_config`; `passes` and `verify` print `geo.sync` and
`geo.verify`; `console` is the output (rich, user errors without tracebacks).
"""

__all__ = ["tasks"]
