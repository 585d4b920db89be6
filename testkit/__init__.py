"""What the tests and the benchmark share: synthetic images, free ports, polling.

Not part of the installed package (only `gdk_geo` is): it is imported from a checkout, by
`pytest` (the repository root is on its path) and by `python -m bench`.
"""
