"""Fault scenarios against real nodes (docker, slow)."""
