"""``ProxyServer``: the listening socket and one handler thread per connection.

Holds only immutable ``Settings`` and server-wide state; nothing per-connection lives
here (websockify stored token targets on its server object, STYLE.md §5 weakness 2).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import sys
from typing import Any

from proxy.errors import StartupError
from proxy.handler import ProxyRequestHandler
from proxy.settings import Settings

log = logging.getLogger(__name__)


def resolve_listen(host: str, port: int, prefer_ipv6: bool = False) -> tuple[int, tuple[Any, ...]]:
    """Pick the address to bind as websockify does: IPv4 first unless ``-6`` (spec §7.7).

    Raises:
        StartupError: the host does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"Opening socket failed: {exc}") from exc
    infos.sort(key=lambda info: info[0] == socket.AF_INET6, reverse=prefer_ipv6)
    family, _type, _proto, _name, address = infos[0]
    return family, address


class ProxyServer(socketserver.ThreadingTCPServer):
    """A thread per connection; the handler upgrades and relays (see ``proxy.handler``).

    Usable from another program: ``ProxyServer(settings)`` binds at once;
    ``serve_forever()`` in one thread, ``shutdown()`` and ``server_close()`` from another.
    """

    daemon_threads = True  # live connections must not keep the process alive after exit
    block_on_close = False  # server_close() must not wait for open connections
    allow_reuse_address = True  # websockify sets SO_REUSEADDR (spec §6)
    request_queue_size = 128  # listen() backlog; websockify uses 100, socketserver 5

    def __init__(
        self,
        settings: Settings,
        handler_class: type[ProxyRequestHandler] = ProxyRequestHandler,
        bind_and_activate: bool = True,
    ) -> None:
        self.settings = settings
        self.address_family, address = resolve_listen(
            settings.listen_host, settings.listen_port, settings.prefer_ipv6
        )
        super().__init__(address, handler_class, bind_and_activate)

    def server_bind(self) -> None:
        # Accepted sockets inherit SO_KEEPALIVE from the listener, as in websockify (§6).
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        super().server_bind()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The one catch-all per thread: websockify's line, the traceback only with -v."""
        exc = sys.exc_info()[1]
        log.info("handler exception: %s", exc)
        log.debug("exception", exc_info=True)
