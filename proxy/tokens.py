"""Token plugins with websockify's interface (spec §8); built-ins land with the token issue.

A plugin is built once with ``--token-source`` and shared by all connection threads
(websockify built one per forked child), so ``lookup`` must be thread-safe.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from proxy.settings import Target


class BasePlugin:
    """Finds no token (websockify's ``token_plugins.BasePlugin``)."""

    def __init__(self, src: str | None = None) -> None:
        self.source = src

    def lookup(self, token: str) -> Any:
        """``(host, port)``, ``['unix_socket', path]`` or None (not found)."""
        return None


def token_from_query(path: str) -> str | None:
    """The ``token`` query parameter as websockify reads it (spec §8.1).

    First occurrence wins, ``+`` is a space, trailing newlines are stripped, and an
    empty value counts as absent.
    """
    values = parse_qs(urlsplit(path).query, keep_blank_values=True).get("token")
    token = values[0].rstrip("\n") if values else ""
    return token or None


def token_from_host(host: str | None) -> str | None:
    """``--host-token``: the Host header up to the first colon (spec §8.1)."""
    token = (host or "").split(":", 1)[0]
    return token or None


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
