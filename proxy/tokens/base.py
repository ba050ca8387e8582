"""The token-plugin interface shared by every plugin, and helpers for their answers.

Pure: no I/O. A plugin is built once with ``--token-source`` and shared by all connection
threads (websockify built one per forked child, spec §8.1), so ``lookup`` must be
thread-safe: the built-ins either keep no state or guard their cache with a lock.
"""

from __future__ import annotations

import importlib
import re
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
        StartupError: it is not installed (exit 1, with the install hint).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise StartupError(f"{plugin} requires the '{extra}' extra: "
                           f"pip install {DISTRIBUTION}[{extra}] ({exc})") from exc


def target_from_lookup(result: Any) -> Target | None:
    """Normalise a plugin's answer; ports may be str, int or bytes (spec §8.1).

    Raises:
        ValueError: the answer has none of the documented shapes.
    """
    if result is None:
        return None
    host, port = result
    if host == "unix_socket":
        return Target(unix_socket=str(port))
    if isinstance(port, bytes):
        port = port.decode("ascii")
    if isinstance(host, bytes):
        host = host.decode("ascii")
    return Target(host=str(host), port=int(port))
