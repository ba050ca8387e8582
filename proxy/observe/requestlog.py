"""The handler's log lines: http.server's format, through the logging module (spec §3.1).

A mixin for ``ProxyRequestHandler`` (which lives in ``proxy.serve.handler``): the client label
(``address_string``) and the per-request lines websockify prints, escaped and, with
``--log-format json``, replaced by one record per connection (``proxy.observe.sessionlog``).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from collections.abc import Callable
from typing import Any

from proxy.observe import sessionlog
from proxy.settings import Settings

#: The handler's logger: its name is the one operators' logging configs know.
log = logging.getLogger("proxy.handler")

# Control characters are escaped in logged request data, as http.server does since 3.11.
_CONTROL_CHARS = {c: rf"\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


class RequestLog:
    """``address_string`` and the ``log_*`` methods of ``BaseHTTPRequestHandler``."""

    settings: Settings
    session: sessionlog.Session
    client_address: Any
    requestline: str
    #: Behind a ``--trusted-proxy``: the client it named (set by the handler's do_GET).
    forwarded_client: tuple[str, int] | None = None

    log_date_time_string: Callable[[], str]  # BaseHTTPRequestHandler's

    def address_string(self) -> str:
        """The peer IP; for ``--unix-listen`` the socket path, as websockify logs (§3.1).

        The one place the client label comes from: behind a ``--trusted-proxy`` it is the
        address that proxy forwarded.
        """
        if self.forwarded_client is not None:
            return self.forwarded_client[0]
        if isinstance(self.client_address, tuple) and self.client_address:
            return str(self.client_address[0])
        return self.settings.unix_listen or "unix"

    def log_message(self, format: str, *args: Any) -> None:
        self._log(logging.INFO, format, *args)

    def log_verbose(self, format: str, *args: Any) -> None:
        self._log(logging.DEBUG, format, *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The request line is only logged with -v, as websockify does (spec §3.3)."""
        if isinstance(code, HTTPStatus):
            code = code.value
        if isinstance(code, int):
            self.session.status = code
        self.log_verbose('"%s" %s %s', self.requestline, code, size)

    def _log(self, level: int, format: str, *args: Any) -> None:
        # --log-format json: one record per connection replaces these lines.
        if log.isEnabledFor(level) and self.settings.log_format != "json":
            message = (format % args).translate(_CONTROL_CHARS)
            log.log(level, "%s - - [%s] %s", self.address_string(), self.log_date_time_string(),
                    message)
