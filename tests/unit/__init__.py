"""Unit tests: no Docker, no services, no network; `make test-fast` runs them."""
