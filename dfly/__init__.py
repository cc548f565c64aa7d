"""Composition root: the `dfly` command, the daemon process and `dfly up`. Nothing imports this package."""
