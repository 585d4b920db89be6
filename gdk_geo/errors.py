"""User-facing errors.

Anything a user can fix (a typo in gdk.yml, a port in use, a missing image) is raised as a
`GdkGeoError`. The invoke tasks catch it and print `what`, `where` and `fix` without a
traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GdkGeoError(Exception):
    """A problem the user can fix: what went wrong, where, and how to fix it."""

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        """The message as printed to the user, one fact per line."""
        lines = [self.what]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.fix:
            lines.append(f"  fix:   {self.fix}")
        return "\n".join(lines)

    def one_line(self) -> str:
        """what; where; fix on one line, for a service log whose last line is read first."""
        parts = [self.what]
        if self.where:
            parts.append(f"where: {self.where}")
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return "; ".join(parts)


class ConfigError(GdkGeoError):
    """gdk.yml (or a value given on the command line) is not valid."""
