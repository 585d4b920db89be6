"""The benchmark harness's own arithmetic and ordering."""
