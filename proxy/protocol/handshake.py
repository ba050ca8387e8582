"""Decide whether an HTTP request may be upgraded, and build the 101 with wsproto.

Pure: works on parsed headers and returns bytes; never touches a socket. websockify's own
checks and reason texts run first (spec §4.3); the request was parsed once, by http.server,
so the 101 is built here from wsproto's own pieces (accept token, extension negotiation,
the post-handshake ``Connection``) rather than by re-parsing a synthesized request with
h11 (issue #19: that second parse was the largest Python cost of a connection).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus

from wsproto.connection import Connection, ConnectionType
from wsproto.extensions import Extension
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token, split_comma_header

from proxy.errors import HandshakeError
from proxy.protocol.stream import DataMode

# Reason phrases of websockify 0.13.0's 400 answers, verbatim (spec §4.3).
MISSING_VERSION = "Missing Sec-WebSocket-Version header"
UNSUPPORTED_VERSION = "Unsupported protocol version %s"
MISSING_KEY = "Missing Sec-WebSocket-Key header"
INVALID_PROTOCOL = "Invalid protocol selected"
# Ours: a key wsproto/h11 cannot carry (non-ASCII or control characters).
INVALID_KEY = "Invalid Sec-WebSocket-Key header"

#: websockify accepts the hybi-07/08 drafts as well as RFC 6455 (spec §4.3).
SUPPORTED_VERSIONS = frozenset({"7", "8", "13"})

_SUBPROTOCOL_MODES = {"binary": DataMode.BINARY, "base64": DataMode.BASE64}


@dataclass(frozen=True)
class Upgrade:
    """An upgrade request that passed the checks."""

    key: str
    #: The subprotocol to answer with, or None for no Sec-WebSocket-Protocol header.
    subprotocol: str | None
    #: The client's Sec-WebSocket-Extensions offers (``--compression``), in its order.
    extensions: tuple[str, ...] = field(default=())

    @property
    def mode(self) -> DataMode:
        return _SUBPROTOCOL_MODES.get(self.subprotocol or "binary", DataMode.BINARY)


def is_upgrade(headers: Message) -> bool:
    """True for a WebSocket upgrade; websockify compares the whole value (spec §4.2)."""
    return str(headers.get("Upgrade", "")).lower() == "websocket"


def offered_subprotocols(headers: Message) -> list[str]:
    """The client's subprotocols, every header occurrence, whitespace trimmed.

    websockify splits the first header on "," without trimming, so "base64, binary" fails
    there (spec §4.4, §13.2); RFC 6455 allows optional whitespace around the commas.
    """
    offered: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol") or ():
        offered.extend(item.strip() for item in str(value).split(","))
    return [item for item in offered if item]


def choose_subprotocol(offered: Sequence[str]) -> str | None:
    """``binary`` wins when offered; ``base64`` alone is supported again (0.13 answers 400)."""
    if not offered:
        return None
    for name in ("binary", "base64"):
        if name in offered:
            return name
    raise HandshakeError(HTTPStatus.BAD_REQUEST, INVALID_PROTOCOL)


def check_upgrade(headers: Message) -> Upgrade:
    """Run websockify's checks in its order (spec §4.3).

    Raises:
        HandshakeError: 400 with websockify's reason text.
    """
    version = headers.get("Sec-WebSocket-Version")
    if version is None:
        raise HandshakeError(HTTPStatus.BAD_REQUEST, MISSING_VERSION)
    if str(version).strip() not in SUPPORTED_VERSIONS:
        raise HandshakeError(HTTPStatus.BAD_REQUEST, UNSUPPORTED_VERSION % version)
    key = headers.get("Sec-WebSocket-Key")
    if key is None:
        raise HandshakeError(HTTPStatus.BAD_REQUEST, MISSING_KEY)
    offers = tuple(offer.strip() for value in headers.get_all("Sec-WebSocket-Extensions") or ()
                   for offer in str(value).split(",") if offer.strip())
    return Upgrade(str(key).strip(), choose_subprotocol(offered_subprotocols(headers)), offers)


#: A header value h11 (and so wsproto's handshake) can carry: no NUL, no leading, trailing
#: or non-blank whitespace (h11's fixed-up RFC 7230 field-value).
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")


def _field(value: bytes) -> bytes:
    """``value`` if h11 would carry it in a header, else ValueError (as h11 raises)."""
    if _FIELD_VALUE.fullmatch(value) is None:
        raise ValueError(f"Illegal header value {value!r}")
    return value


def accept(upgrade: Upgrade, extra_headers: Sequence[tuple[str, str]],
           extensions: Sequence[Extension] = ()) -> tuple[Connection, bytes]:
    """Build the server-side wsproto connection and the 101 response bytes.

    The bytes are those wsproto's h11 handshake writes for this request (the unit tests
    compare the two): its accept token, the subprotocol, the extensions wsproto's own
    negotiation accepts, then ``extra_headers``. Host, Connection and the version are
    not checked by websockify (spec §4.3), so nothing here refuses them. ``extensions``
    are the ones we support (``--compression``); each is enabled only if the client
    offered it.

    Raises:
        HandshakeError: 400 when the key (or an extension offer) cannot be carried in an
            HTTP header, where wsproto's handshake would have refused it.
    """
    offered = list(extensions) if upgrade.extensions else []
    try:
        key = _field(upgrade.key.encode("ascii"))
        offers = split_comma_header(_field(", ".join(upgrade.extensions).encode("latin-1"))) \
            if offered else []
    except (UnicodeError, ValueError) as exc:
        raise HandshakeError(HTTPStatus.BAD_REQUEST, INVALID_KEY) from exc
    lines = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket",
             b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + generate_accept_token(key)]
    if upgrade.subprotocol is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + upgrade.subprotocol.encode("ascii"))
    agreed = server_extensions_handshake(offers, offered) if offered else None
    if agreed:
        lines.append(b"Sec-WebSocket-Extensions: " + agreed)
    for name, value in extra_headers:
        lines.append(name.encode("ascii") + b": " + _field(value.encode("latin-1")))
    return Connection(ConnectionType.SERVER, offered), b"\r\n".join(lines) + b"\r\n\r\n"
