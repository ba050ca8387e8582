"""A threaded, drop-in replacement for the ``websockify`` command.

The package is laid out along the path of a connection (docs/architecture.rst): the
leaves ``errors`` and ``settings``, then ``protocol``, ``access``, ``transport``,
``observe``, ``serve`` and ``process``, each importing only those before it.
"""

__version__ = "0.1.0"
