"""The token-plugin interface shared by every plugin, and helpers for their answers.

Pure: no I/O, except that a service-name port (``http``) is looked up in the services
database, as websockify's resolver call does. A plugin is built once with
``--token-source`` and shared by all connection threads (websockify built one per forked
child, spec §8.1), so ``lookup`` must be thread-safe: the built-ins either keep no state
or guard their cache with a lock.
"""

from __future__ import annotations

import importlib
import re
import socket
from types import ModuleType
from typing import Any

from proxy.errors import StartupError
from proxy.settings import Target

#: The distribution name, for "pip install NAME[extra]" hints.
DISTRIBUTION = "websockify-threaded"

# websockify's TokenRedis source syntax: fields split on ":", a field may be wrapped in
# double quotes to contain colons (spec §8.6).
_SOURCE_FIELD = re.compile(
    r'(?<=^)"([^"]+)"(?=:|$)'
    r'|(?<=:)"([^"]+)"(?=:|$)'
    r'|(?<=^)([^:]*)(?=:|$)'
    r'|(?<=:)([^:]*)(?=:|$)'
)


class BasePlugin:
    """Finds no token (websockify's ``token_plugins.BasePlugin``)."""

    def __init__(self, src: str | None = None) -> None:
        self.source = src

    def lookup(self, token: str) -> Any:
        """``(host, port)``, ``['unix_socket', path]`` or None (not found)."""
        return None


def parse_source_args(src: str) -> list[str]:
    """``src.split(":")``, except that ``"a:b"`` in double quotes stays one field.

    ``a:b:c`` -> ``['a', 'b', 'c']``; ``a::::"n1:n2"`` -> ``['a', '', '', '', 'n1:n2']``.
    """
    return [m[0] or m[1] or m[2] or m[3] for m in _SOURCE_FIELD.findall(src)]


def split_target(text: str) -> tuple[str, str] | None:
    """``host:port`` split at the last colon, or ``unix_socket:PATH``; None without a colon."""
    if text.startswith("unix_socket:"):
        return "unix_socket", text[len("unix_socket:"):]
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port:
        return None
    return host, port


def import_extra(module: str, plugin: str, extra: str) -> ModuleType:
    """Import an optional dependency at plugin start-up.

    Raises:
        StartupError: it is not installed (exit 1, with an install hint that works: the
            distribution is not on the package index, so not ``pip install NAME[extra]``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        requirement = module.split(".", 1)[0]
        raise StartupError(f"{plugin} requires {requirement} (the '{extra}' extra of "
                           f"{DISTRIBUTION}): pip install {requirement} ({exc})") from exc


class UnusablePort(ValueError):
    """A token plugin answered a port no connection can use: answered 502 (#18)."""

    def __init__(self, port: object) -> None:
        super().__init__(f"unusable port {port!r}")
        self.port = port


def port_number(port: object) -> int:
    """The TCP port of a plugin's answer: a number (int, or digits as str or bytes), or a
    service name such as ``http``, which websockify hands to the resolver (#18).

    Raises:
        UnusablePort: anything else, a service the resolver does not know, or a number
            outside 1-65535.
    """
    text = port.decode("ascii", "replace") if isinstance(port, bytes) else port
    if isinstance(text, str) and text.isascii() and text.isdigit():
        number = int(text)
    elif isinstance(text, str) and text and text.isascii() and text.isprintable():
        try:
            number = socket.getservbyname(text, "tcp")  # /etc/services, as getaddrinfo
        except OSError:
            raise UnusablePort(port) from None
    elif isinstance(text, int) and not isinstance(text, bool):
        number = text
    else:
        raise UnusablePort(port)
    if not 0 < number < 65536:
        raise UnusablePort(port)
    return number


def target_from_lookup(result: Any) -> Target | None:
    """Normalise a plugin's answer; ports may be str, int or bytes (spec §8.1).

    The port as the plugin gave it is kept for auth plugins (``Target.given_port``).

    Raises:
        UnusablePort: the port cannot be used (``port_number``).
        ValueError: the answer has none of the documented shapes.
    """
    if result is None:
        return None
    host, port = result
    if host == "unix_socket":
        return Target(unix_socket=str(port))
    if isinstance(host, bytes):
        host = host.decode("ascii")
    given = port if isinstance(port, (int, str, bytes)) else None
    return Target(host=str(host), port=port_number(port), given_port=given)
