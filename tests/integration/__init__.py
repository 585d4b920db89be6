"""Integration tests: real registries, real services and processes on loopback."""
