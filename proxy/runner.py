"""Compatibility shim of the embedding API: ``proxy.runner.serve`` (README.rst) is
``proxy.process.runner.serve`` since issue #17."""

from proxy.process.runner import serve

__all__ = ["serve"]
