"""Accept or reject an upgrade request: request facts in, an ``Accept`` or the error out.

The decision of ``ProxyRequestHandler.do_GET`` without its I/O (#17 §2): no socket, no
log line; the handler writes the answer, dials the target and relays. The plugins may do
their own I/O (a token API, Redis), as in ``proxy.access.resolve``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from typing import Any

from wsproto.connection import Connection

from proxy.access import resolve
from proxy.errors import HandshakeError
from proxy.protocol import handshake
from proxy.protocol.deflate import BoundedDeflate
from proxy.serve import reverseroute
from proxy.settings import Settings, Target

#: The 503 of a draining server (SIGTERM with --drain-timeout).
SHUTTING_DOWN = "Server is shutting down"


@dataclass(frozen=True)
class Request:
    """What the decision needs to know of one upgrade request."""

    path: str
    #: The request's headers; the ``SSL_*`` ones are replaced by the verified CN (§9.2)
    #: before the auth plugin sees them.
    headers: Message
    #: The token the request carries (``resolve.request_token``); None without a token plugin.
    token: str | None
    #: The verified client certificate's CN (spec §9.1).
    client_cn: str | None
    #: The 503 of ``--max-connections[-per-ip]`` (``Ticket.refusal``), if over a limit.
    refusal: HandshakeError | None
    draining: bool
    #: Server, Date and ``--response-header`` lines for the 101.
    response_headers: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Accept:
    """An accepted upgrade: where to, the 101 to send and the connection it opens."""

    target: Target
    upgrade: handshake.Upgrade
    ws: Connection
    response: bytes
    #: ``--compression``: the permessage-deflate extension, if the client took it.
    deflate: BoundedDeflate | None


def decide(settings: Settings, token_plugin: Any, auth_plugin: Any,
           request: Request) -> Accept | HandshakeError:
    """Limits, then token, auth and the handshake checks, in websockify's order (§4.3)."""
    if request.refusal is not None:
        return request.refusal  # --max-connections[-per-ip]: 503 before anything else
    if request.draining:
        # SIGTERM with --drain-timeout: open sessions go on, new ones are refused.
        return HandshakeError(HTTPStatus.SERVICE_UNAVAILABLE, SHUTTING_DOWN)
    try:
        # --reverse-listen: a parked server by its ID (issue #20 §1), else websockify's way.
        target = reverseroute.repeater_target(settings, token_plugin, request.token) \
            or resolve.target_for_token(settings, token_plugin, request.token)
        if auth_plugin is not None:
            resolve.strip_client_cert_headers(request.headers, request.client_cn)
            resolve.authenticate(auth_plugin, request.headers, target)
        upgrade = handshake.check_upgrade(request.headers)
        # --compression: enabled by accept() only if the client offered permessage-deflate.
        deflate = BoundedDeflate(settings.max_message_size) if settings.compression else None
        ws, response = handshake.accept(upgrade, request.response_headers,
                                        [deflate] if deflate else [])
    except HandshakeError as exc:
        return exc
    return Accept(target, upgrade, ws, response, deflate)
