"""The node contract: what the bundled services read from their rendered `gitlab.yml`.

`settings` types each service's settings as read from its node's `gitlab.yml` (the way
GitLab reads its own); `token_auth` is each node's token realm and minter; `exposure` what a
listener beyond loopback asks for (the node token, the admin page's login); `log_format` the
services' log line format. The CLI renders these files; the services only read them, so
this package is all the two sides share besides the registry client.
"""

__all__ = ["exposure", "log_format", "settings", "token_auth"]
