"""End-to-end tests: `invoke` on real projects, as a user runs it."""
