"""User-facing errors.

Anything a user can fix (a typo in gdk.yml, a port in use, a missing image) is raised as a
`GdkGeoError`. The invoke tasks catch it and print `what`, `where` and `fix` without a
traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable

# How much of what the user gave (a value, a key, a command-line argument) a message may
# repeat. Enough for any real value (a URL, a path, an image reference); a pasted file or
# a runaway value of megabytes is shown as its first characters and its length.
SHOWN_CHARS = 100


def clipped(text: str, show: Callable[[str], str] = str) -> str:
    """`text` as a message may repeat it: whole when short, else its first `SHOWN_CHARS`
    characters and how long it was. A message that echoes a 50 MB value whole buries the
    line saying what is wrong (and floods a terminal or CI log). `show` formats the part
    kept (`repr` quotes it), so that the length stays outside the quotes: `'abc…' (N
    characters)` is never mistaken for the value."""
    if len(text) <= SHOWN_CHARS:
        return show(text)
    return f"{show(text[:SHOWN_CHARS])}… ({len(text):,} characters)"


class GdkGeoError(Exception):
    """A problem the user can fix: what went wrong, where, and how to fix it."""

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def facts(self) -> list[tuple[str, str]]:
        """`where` and `fix` with their labels, those that were given, in the order shown:
        every rendering of the error lists the same facts."""
        return [
            (label, value) for label, value in (("where", self.where), ("fix", self.fix)) if value
        ]

    def render(self) -> str:
        """The message as printed to the user, one fact per line."""
        return "\n".join(
            [self.what, *(f"  {label + ':':7}{value}" for label, value in self.facts())]
        )

    def one_line(self) -> str:
        """what; where; fix on one line, for a service log whose last line is read first."""
        return "; ".join([self.what, *(f"{label}: {value}" for label, value in self.facts())])


class ConfigError(GdkGeoError):
    """gdk.yml (or a value given on the command line) is not valid."""
