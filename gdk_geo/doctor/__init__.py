"""`geo.check`: every diagnostic declared once, run in order, documented from itself.

`check_model` is the shape of a check (what it verifies, its fix, what it needs first);
`checks` is the catalog in order; `local_checks`, `live_checks`, `auth_checks`,
`tracking_db_check`, `notification_probe` and `sync_failures` hold their bodies;
`checks_docs` writes the troubleshooting table from the catalog.
"""

__all__ = ["checks", "checks_docs"]
