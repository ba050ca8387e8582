"""A threaded, drop-in replacement for the ``websockify`` command.

The package is layered (see README.rst, "Layout"): pure modules (errors, settings,
handshake, frames) never touch sockets; I/O modules (targets, relay) move bytes;
server and handler compose them; cli is the process entry point.
"""

__version__ = "0.1.0"
