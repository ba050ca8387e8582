"""Compatibility shim: ``proxy.cli:main`` (the console script) is ``proxy.process.cli.main``."""

from proxy.process.cli import main

__all__ = ["main"]
