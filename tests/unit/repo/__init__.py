"""The repository as a whole: the import order, product text, TLS verification."""
