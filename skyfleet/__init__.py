"""The `skyfleet` command line: a thin layer that wires the packages together."""
