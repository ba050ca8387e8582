"""The pure parts of ``websockify-client`` (issue #20 §2): URL, request, answer, and the
masked frame policy, checked against our own server-side handshake and a wsproto server."""

from __future__ import annotations

import base64

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Request

from proxy.protocol import handshake
from proxy.protocol.clienthandshake import Endpoint, HandshakeRefused, answer, parse_url, request
from proxy.protocol.clientrole import ServerPeerStream
from proxy.protocol.stream import DataMode


def test_parse_url_reads_scheme_port_resource_and_credentials() -> None:
    assert parse_url("ws://h/") == Endpoint(False, "h", 80, "/")
    assert parse_url("wss://h") == Endpoint(True, "h", 443, "/")
    assert parse_url("wss://u%40x:p%3Aw@[::1]:8443/vnc?token=a b") == Endpoint(
        True, "::1", 8443, "/vnc?token=a b", "u@x", "p:w")
    assert parse_url("wss://h:443/").host_header == "h"
    assert parse_url("ws://[::1]:81/").host_header == "[::1]:81"


@pytest.mark.parametrize("url, message", [
    ("http://h/", "URL must start with ws:// or wss://: http://h/"),
    ("ws://h:99999/", "bad port in URL: ws://h:99999/"),
    ("ws:///x", "no host in URL: ws:///x"),
])
def test_parse_url_rejects_with_a_usage_message(url: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_url(url)
    assert str(info.value) == message


def server_request(data: bytes) -> Request:
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(data)
    event = next(server.events())
    assert isinstance(event, Request)
    return event


def test_request_carries_headers_subprotocol_and_basic_credentials() -> None:
    _, data = request(parse_url("ws://u:p@h:81/x?t=1"), [("Origin", "http://o")], ["binary"])
    event = server_request(data)
    assert (event.host, event.target, event.subprotocols) == ("h:81", "/x?t=1", ["binary"])
    headers = dict(event.extra_headers)
    assert headers[b"origin"] == b"http://o"
    assert headers[b"authorization"] == b"Basic " + base64.b64encode(b"u:p")


def test_an_explicit_authorization_header_wins_over_user_info() -> None:
    _, data = request(parse_url("ws://u:p@h/"), [("Authorization", "Bearer t")], ["binary"])
    assert dict(server_request(data).extra_headers)[b"authorization"] == b"Bearer t"


def open_client() -> tuple[WSConnection, Connection]:
    """Our client's connection, opened by our server's 101; and a wsproto server peer."""
    ws, data = request(parse_url("ws://h/"), [], ["binary"])
    key = dict(server_request(data).extra_headers)[b"sec-websocket-key"].decode()
    server, response = handshake.accept(handshake.Upgrade(key, "binary"), [])
    answer(ws, response)
    assert ws.state is ConnectionState.OPEN
    return ws, server


@pytest.mark.parametrize("head, text", [
    (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "403 Forbidden"),
    (b"HTTP/1.1 404 No such token\r\n\r\n", "404 No such token"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response: 'SSH-2.0-OpenSSH'"),
])
def test_an_answer_without_101_is_refused_with_its_status_line(head: bytes, text: str) -> None:
    ws, _ = request(parse_url("ws://h/"), [], ["binary"])
    with pytest.raises(HandshakeRefused) as info:
        answer(ws, head)
    assert str(info.value) == text


def test_a_101_without_the_accept_key_is_refused() -> None:
    ws, _ = request(parse_url("ws://h/"), [], ["binary"])
    with pytest.raises(HandshakeRefused) as info:
        answer(ws, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n")
    assert info.value.status == 101


def test_our_frames_are_masked_and_the_servers_are_read() -> None:
    ws, server = open_client()
    stream = ServerPeerStream(ws)
    frame = b"".join(stream.frame_data(b"hello"))
    assert frame[1] & 0x80  # the MASK bit (RFC 6455 §5.3): a server must reject it unset
    server.receive_data(frame)
    assert [e.data for e in server.events() if isinstance(e, BytesMessage)] == [b"hello"]
    out = stream.receive(server.send(BytesMessage(data=b"RFB 003.008\n")))
    assert out.to_target == b"RFB 003.008\n"


def test_base64_mode_sends_masked_text_and_a_close_ends_it() -> None:
    ws, server = open_client()
    stream = ServerPeerStream(ws, mode=DataMode.BASE64)
    server.receive_data(b"".join(stream.frame_data(b"\x00\xff")))
    assert [getattr(e, "data", None) for e in server.events()] == ["AP8="]
    out = stream.receive(server.send(CloseConnection(code=1000, reason="bye")))
    assert out.to_client  # the close is echoed
    assert stream.close_info is not None and stream.close_info.code == 1000
    assert stream.frame_data(b"late") == ()


def test_a_header_h11_refuses_is_a_value_error_not_a_traceback() -> None:
    with pytest.raises(ValueError) as info:
        request(parse_url("ws://h/"), [("Bad Name", "x")], ["binary"])
    assert str(info.value) == "cannot send this handshake: Illegal header name b'Bad Name'"
