"""Compatibility shim of the embedding API: ``proxy.server.ProxyServer`` (README.rst,
"Embedding") is ``proxy.serve.server.ProxyServer`` since issue #17."""

from proxy.serve.server import ProxyServer

__all__ = ["ProxyServer"]
