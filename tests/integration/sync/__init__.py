"""Replication data-plane tests against real registries."""
