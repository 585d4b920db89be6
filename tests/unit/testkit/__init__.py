"""testkit: synthetic images, free ports, polling."""
