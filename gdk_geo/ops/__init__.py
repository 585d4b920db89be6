"""Operations: what the tasks do, with no printing of their own beyond results.

`lifecycle` (set-up, restart, stop, destroy steps), `status`, `promote`, `unplanned`,
`loss` and `reconcile` (failover drills), `link` (`geo.link`'s shaped links and their
relays), `login`, and `worker_client` (the secondary
worker's API, for passes).
Imported lazily: name the module you need.
"""

__all__ = [
    "lifecycle",
    "link",
    "login",
    "loss",
    "promote",
    "reconcile",
    "status",
    "unplanned",
    "worker_client",
]
