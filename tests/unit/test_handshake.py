"""proxy.protocol.handshake: websockify's upgrade checks and the 101, without sockets."""

from __future__ import annotations

import io
from email.message import Message
from http.client import parse_headers

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, Request
from wsproto.extensions import Extension

from proxy.protocol import handshake
from proxy.protocol.deflate import BoundedDeflate
from proxy.errors import HandshakeError
from proxy.protocol.stream import DataMode

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def headers(*lines: str) -> Message:
    """Parse header lines the way http.server does."""
    raw = "".join(f"{line}\r\n" for line in lines) + "\r\n"
    return parse_headers(io.BytesIO(raw.encode("latin-1")))


def upgrade_headers(*extra: str, version: str | None = "13", key: str | None = RFC_KEY) -> Message:
    lines = ["Host: h", "Upgrade: websocket", "Connection: Upgrade", *extra]
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    return headers(*lines)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("websocket", True), ("WebSocket", True), ("websocket2", False), ("h2c", False),
     (None, False)],
)
def test_only_an_exact_websocket_upgrade_value_is_an_upgrade(value: str | None,
                                                             expected: bool) -> None:
    """websockify routes `Upgrade: websocket2` as a plain GET (spec §4.2)."""
    lines = [f"Upgrade: {value}"] if value is not None else []
    assert handshake.is_upgrade(headers(*lines)) is expected


@pytest.mark.parametrize(
    ("kwargs", "extra", "reason"),
    [
        ({"version": None}, (), "Missing Sec-WebSocket-Version header"),
        ({"version": "5"}, (), "Unsupported protocol version 5"),
        ({"version": "12"}, (), "Unsupported protocol version 12"),
        ({"version": "20"}, (), "Unsupported protocol version 20"),
        ({"key": None}, (), "Missing Sec-WebSocket-Key header"),
        ({}, ("Sec-WebSocket-Protocol: foo",), "Invalid protocol selected"),
        ({}, ("Sec-WebSocket-Protocol: foo, bar",), "Invalid protocol selected"),
    ],
)
def test_a_bad_upgrade_is_rejected_with_websockify_reason(
        kwargs: dict[str, str | None], extra: tuple[str, ...], reason: str) -> None:
    """The spec §4.3 table: status 400 and the reason text verbatim."""
    with pytest.raises(HandshakeError) as info:
        handshake.check_upgrade(upgrade_headers(*extra, **kwargs))
    assert info.value.status == 400
    assert info.value.reason == reason


@pytest.mark.parametrize("version", ["7", "8", "13"])
def test_the_draft_versions_websockify_accepts_are_accepted(version: str) -> None:
    assert handshake.check_upgrade(upgrade_headers(version=version)).key == RFC_KEY


@pytest.mark.parametrize(
    ("offered", "chosen", "mode"),
    [
        (None, None, DataMode.BINARY),
        ("", None, DataMode.BINARY),
        ("binary", "binary", DataMode.BINARY),
        ("binary, base64", "binary", DataMode.BINARY),
        ("base64,binary", "binary", DataMode.BINARY),
        ("base64, binary", "binary", DataMode.BINARY),  # websockify: 400 (spec §4.4)
        ("  binary  ", "binary", DataMode.BINARY),
        ("base64", "base64", DataMode.BASE64),  # websockify 0.13: 400
        ("foo, binary", "binary", DataMode.BINARY),
    ],
)
def test_subprotocols_are_trimmed_and_binary_wins(offered: str | None, chosen: str | None,
                                                  mode: DataMode) -> None:
    extra = () if offered is None else (f"Sec-WebSocket-Protocol: {offered}",)
    upgrade = handshake.check_upgrade(upgrade_headers(*extra))
    assert upgrade.subprotocol == chosen
    assert upgrade.mode is mode


def test_subprotocols_from_repeated_headers_are_all_considered() -> None:
    upgrade = handshake.check_upgrade(upgrade_headers("Sec-WebSocket-Protocol: foo",
                                                      "Sec-WebSocket-Protocol: binary"))
    assert upgrade.subprotocol == "binary"


def test_the_101_carries_the_rfc_accept_value_and_the_extra_headers() -> None:
    _ws, response = handshake.accept(handshake.Upgrade(RFC_KEY, "binary"),
                                     [("Server", "WebSockify Python/3"), ("Date", "today")])
    lines = response.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    assert f"Sec-WebSocket-Accept: {RFC_ACCEPT}".lower() in (line.lower() for line in lines)
    assert "Server: WebSockify Python/3" in lines
    assert "Date: today" in lines
    assert "sec-websocket-protocol: binary" in (line.lower() for line in lines)
    assert response.endswith(b"\r\n\r\n")


def test_the_101_is_accepted_by_an_independent_client() -> None:
    """A wsproto client validates our accept token and subprotocol."""
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="h", target="/", subprotocols=["base64"]))
    key = [line.split(b": ", 1)[1] for line in request.split(b"\r\n")
           if line.lower().startswith(b"sec-websocket-key")][0]
    _ws, response = handshake.accept(handshake.Upgrade(key.decode(), "base64"), [])
    client.receive_data(response)
    event = next(client.events())
    assert isinstance(event, AcceptConnection)
    assert event.subprotocol == "base64"


def test_no_subprotocol_header_when_none_was_offered() -> None:
    _ws, response = handshake.accept(handshake.Upgrade(RFC_KEY, None), [])
    assert b"sec-websocket-protocol" not in response.lower()


def test_a_key_that_cannot_be_carried_in_a_header_is_a_400() -> None:
    with pytest.raises(HandshakeError) as info:
        handshake.accept(handshake.Upgrade("caf\u00e9", None), [])
    assert info.value.status == 400
    assert info.value.reason == "Invalid Sec-WebSocket-Key header"


def _h11_reference(upgrade: handshake.Upgrade, extra: list[tuple[str, str]],
                   extensions: list[BoundedDeflate]) -> bytes:
    """The 101 as wsproto's h11 handshake writes it: what ``accept`` built before issue #19
    (a normalised request re-parsed by h11, then ``AcceptConnection``)."""
    ws = WSConnection(ConnectionType.SERVER)
    request = [(b"Host", b"websockify"), (b"Connection", b"Upgrade"),
               (b"Upgrade", b"websocket"), (b"Sec-WebSocket-Version", b"13"),
               (b"Sec-WebSocket-Key", upgrade.key.encode("ascii"))]
    if upgrade.subprotocol is not None:
        request.append((b"Sec-WebSocket-Protocol", upgrade.subprotocol.encode("ascii")))
    if extensions and upgrade.extensions:
        request.append((b"Sec-WebSocket-Extensions",
                        ", ".join(upgrade.extensions).encode("latin-1")))
    ws.initiate_upgrade_connection(request, "/")
    assert isinstance(next(ws.events()), Request)
    offered: list[Extension] = list(extensions) if upgrade.extensions else []
    return ws.send(AcceptConnection(
        subprotocol=upgrade.subprotocol, extensions=offered,
        extra_headers=[(n.encode("ascii"), v.encode("latin-1")) for n, v in extra]))


_OFFERS = [(), ("permessage-deflate",), ("x-webkit-deflate-frame", "permessage-deflate"),
           ("permessage-deflate; client_max_window_bits",),
           ("permessage-deflate; server_max_window_bits=10", "permessage-deflate"),
           ("permessage-deflate; server_max_window_bits=7",), ("foo; a=1",)]


@pytest.mark.parametrize("offers", _OFFERS)
@pytest.mark.parametrize("subprotocol", ["binary", "base64", None])
@pytest.mark.parametrize("compression", [True, False])
def test_the_101_is_byte_for_byte_wsprotos(offers: tuple[str, ...], subprotocol: str | None,
                                           compression: bool) -> None:
    """Issue #19: the 101 built without h11 is the one wsproto's h11 handshake wrote,
    and the same extensions are enabled by it."""
    extra = [("Server", "WebSockify Python/3.11.7"), ("Date", "Sun, 06 Dec 2026 23:00:00 GMT"),
             ("X-Frame-Options", "DENY")]
    upgrade = handshake.Upgrade(RFC_KEY, subprotocol, offers)
    ours, theirs = BoundedDeflate(1 << 20), BoundedDeflate(1 << 20)
    ws, response = handshake.accept(upgrade, extra, [ours] if compression else [])
    assert response == _h11_reference(upgrade, extra, [theirs] if compression else [])
    assert ours.enabled() is theirs.enabled()
    assert ws.state is ConnectionState.OPEN


@pytest.mark.parametrize("key", ["a\x01b", "a\x0bb", "a\x00b", "a b", "a  \tb", "", "+/=="])
def test_keys_are_refused_exactly_where_wsprotos_handshake_refuses_them(key: str) -> None:
    """Control characters and blanks in the key: 400 where h11 could not carry it."""
    upgrade = handshake.Upgrade(key, None)
    try:
        _h11_reference(upgrade, [], [])
    except Exception:  # h11's LocalProtocolError, or its parser's error
        with pytest.raises(HandshakeError) as info:
            handshake.accept(upgrade, [])
        assert (info.value.status, info.value.reason) == (400, "Invalid Sec-WebSocket-Key header")
    else:
        assert handshake.accept(upgrade, [])[1] == _h11_reference(upgrade, [], [])


@pytest.mark.parametrize("offer", ["permessage-deflate\x01", "d\u00e9flate", "a\x0bb", "a\x00b"])
def test_offers_are_refused_exactly_where_wsprotos_handshake_refuses_them(offer: str) -> None:
    """With --compression the offers travel through the handshake too: a 400 where h11
    or wsproto refused them, else the same 101; without it they are not looked at."""
    upgrade = handshake.Upgrade(RFC_KEY, "binary", (offer,))
    try:
        expected = _h11_reference(upgrade, [], [BoundedDeflate(1 << 20)])
    except Exception:  # h11's LocalProtocolError, or wsproto's ASCII decoding
        with pytest.raises(HandshakeError) as info:
            handshake.accept(upgrade, [], [BoundedDeflate(1 << 20)])
        assert info.value.reason == "Invalid Sec-WebSocket-Key header"
    else:
        assert handshake.accept(upgrade, [], [BoundedDeflate(1 << 20)])[1] == expected
    assert handshake.accept(upgrade, [])[1] == _h11_reference(upgrade, [], [])
