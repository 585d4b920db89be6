"""gdk-geo: a GDK-style local environment for GitLab Geo container registry replication."""

__version__ = "0.1.0"
