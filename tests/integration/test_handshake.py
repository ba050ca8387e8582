"""The HTTP side of the real command: upgrade checks, status codes, headers, subprotocols."""

from __future__ import annotations

import base64
import hashlib
import platform
from email.utils import parsedate_to_datetime

import pytest
from wsproto.events import TextMessage

from tests.support.backends import EchoBackend
from tests.support.process import ProxyProcess
from tests.support.wsclient import (
    HandshakeRejected,
    HTTPResponse,
    WSClient,
    raw_http,
    upgrade_request,
)

pytestmark = pytest.mark.integration

SERVER = f"WebSockify Python/{platform.python_version()}"
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def error_body(code: int, message: str, explanation: str) -> bytes:
    """http.server's default HTML error page (BaseHTTPRequestHandler.error_message_format)."""
    return (
        "<!DOCTYPE HTML>\n"
        '<html lang="en">\n'
        "    <head>\n"
        '        <meta charset="utf-8">\n'
        "        <title>Error response</title>\n"
        "    </head>\n"
        "    <body>\n"
        "        <h1>Error response</h1>\n"
        f"        <p>Error code: {code}</p>\n"
        f"        <p>Message: {message}.</p>\n"
        f"        <p>Error code explanation: {code} - {explanation}.</p>\n"
        "    </body>\n"
        "</html>\n"
    ).encode()


BAD_REQUEST = "Bad request syntax or unsupported method"


def assert_server_and_date(response: HTTPResponse) -> None:
    assert response.all("Server") == [SERVER]
    date = response.header("Date")
    assert date is not None and parsedate_to_datetime(date).tzinfo is not None


def assert_accepted(response: HTTPResponse, key: str = RFC_KEY) -> None:
    expected = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    ).decode()
    assert response.status_line == b"HTTP/1.1 101 Switching Protocols", response
    assert response.header("Upgrade") == "websocket"
    assert response.header("Connection") == "Upgrade"
    assert response.header("Sec-WebSocket-Accept") == expected
    assert_server_and_date(response)


REJECTIONS = [
    ({"Sec-WebSocket-Version": None}, "Missing Sec-WebSocket-Version header"),
    ({"Sec-WebSocket-Version": "12"}, "Unsupported protocol version 12"),
    ({"Sec-WebSocket-Version": "5"}, "Unsupported protocol version 5"),
    ({"Sec-WebSocket-Version": "20"}, "Unsupported protocol version 20"),
    ({"Sec-WebSocket-Key": None}, "Missing Sec-WebSocket-Key header"),
    ({"Sec-WebSocket-Protocol": "foo"}, "Invalid protocol selected"),
    ({"Sec-WebSocket-Protocol": "foo, bar"}, "Invalid protocol selected"),
]


@pytest.mark.parametrize(
    ("headers", "reason"), REJECTIONS, ids=[r[1] + f" {i}" for i, r in enumerate(REJECTIONS)]
)
def test_an_invalid_upgrade_gets_400_with_the_reason_as_status_text_and_the_html_page(
    proxy_process: ProxyProcess, echo_backend: EchoBackend, headers: dict[str, str | None],
    reason: str,
) -> None:
    """Each bad upgrade request: `400 <reason>`, stdlib error page, and no target connection."""
    response = raw_http(proxy_process.port, upgrade_request(headers=headers))
    assert response.status_line == f"HTTP/1.1 400 {reason}".encode()
    assert response.body == error_body(400, reason, BAD_REQUEST)
    assert response.header("Content-Type") == "text/html;charset=utf-8"
    assert response.header("Content-Length") == str(len(response.body))
    assert_server_and_date(response)
    assert echo_backend.accepted == 0


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    upgrade_request(headers={"Upgrade": "websocket2"}),
    upgrade_request(headers={"Upgrade": None}),
], ids=["plain GET", "Upgrade websocket2", "no Upgrade header"])
def test_a_get_without_websocket_upgrade_gets_405(
    proxy_process: ProxyProcess, request_bytes: bytes
) -> None:
    """No web root: a non-upgrade GET is `405 Method Not Allowed` with the HTML page."""
    response = raw_http(proxy_process.port, request_bytes)
    assert response.status_line == b"HTTP/1.1 405 Method Not Allowed"
    assert response.body == error_body(
        405, "Method Not Allowed", "Specified method is invalid for this resource"
    )
    assert_server_and_date(response)


def test_a_head_request_gets_405_without_a_body(proxy_process: ProxyProcess) -> None:
    """HEAD / is `405 Method Not Allowed`, headers only."""
    response = raw_http(proxy_process.port, b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert response.status_line == b"HTTP/1.1 405 Method Not Allowed"
    assert response.body == b""
    assert_server_and_date(response)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"])
def test_any_method_other_than_get_and_head_gets_501_naming_the_method(
    proxy_process: ProxyProcess, method: str
) -> None:
    """POST and friends: `501 Unsupported method ('POST')`, with Server and Date headers."""
    request = f"{method} / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode()
    response = raw_http(proxy_process.port, request)
    reason = f"Unsupported method ({method!r})"
    assert response.status_line == f"HTTP/1.1 501 {reason}".encode()
    assert response.body == error_body(501, reason, "Server does not support this operation")
    assert_server_and_date(response)


@pytest.mark.parametrize("version", ["7", "8", "13"])
def test_protocol_versions_7_8_and_13_are_accepted(
    proxy_process: ProxyProcess, version: str
) -> None:
    """Sec-WebSocket-Version 7, 8 or 13 with the RFC sample key gets 101 and the RFC accept."""
    response = raw_http(
        proxy_process.port, upgrade_request(headers={"Sec-WebSocket-Version": version})
    )
    assert_accepted(response)
    assert response.header("Sec-WebSocket-Accept") == RFC_ACCEPT
    assert response.header("Sec-WebSocket-Protocol") is None


@pytest.mark.parametrize("missing", ["Connection", "Host"])
def test_a_missing_connection_or_host_header_is_tolerated(
    proxy_process: ProxyProcess, missing: str
) -> None:
    """websockify never checked Connection or Host: the upgrade still succeeds."""
    response = raw_http(proxy_process.port, upgrade_request(headers={missing: None}))
    assert_accepted(response)


def test_an_http_1_0_upgrade_request_is_accepted(proxy_process: ProxyProcess) -> None:
    """`GET / HTTP/1.0` with the upgrade headers gets 101."""
    response = raw_http(proxy_process.port, upgrade_request(version="HTTP/1.0"))
    assert response.status == 101
    assert response.header("Sec-WebSocket-Accept") == RFC_ACCEPT


def test_the_101_response_carries_each_websockify_header_exactly_once(
    proxy_process: ProxyProcess,
) -> None:
    """101 headers: Server, Date, Upgrade, Connection, Sec-WebSocket-Accept, once each."""
    response = raw_http(proxy_process.port, upgrade_request())
    assert_accepted(response)
    names = [name.lower() for name, _ in response.headers]
    for name in ("server", "date", "upgrade", "connection", "sec-websocket-accept"):
        assert names.count(name) == 1, response.headers
    assert "sec-websocket-protocol" not in names
    assert response.body == b"", "no data may follow the 101 before the client speaks"


@pytest.mark.parametrize("offer", [
    "binary", "binary, base64", "base64,binary", "base64, binary", " binary ", "foo,  binary",
])
def test_binary_is_selected_whenever_offered_with_whitespace_trimmed(
    proxy_process: ProxyProcess, offer: str
) -> None:
    """Any offer list containing `binary` (spaces around items ignored) selects `binary`."""
    response = raw_http(
        proxy_process.port, upgrade_request(headers={"Sec-WebSocket-Protocol": offer})
    )
    assert_accepted(response)
    assert response.all("Sec-WebSocket-Protocol") == ["binary"]


def test_base64_offered_alone_is_selected(proxy_process: ProxyProcess) -> None:
    """Legacy `base64`-only clients get `Sec-WebSocket-Protocol: base64`."""
    response = raw_http(
        proxy_process.port, upgrade_request(headers={"Sec-WebSocket-Protocol": "base64"})
    )
    assert_accepted(response)
    assert response.all("Sec-WebSocket-Protocol") == ["base64"]


def test_base64_mode_decodes_client_text_and_encodes_target_bytes_as_text(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """In base64 mode the target sees raw bytes and the client gets them back base64 TEXT."""
    payload = bytes(range(256)) * 4
    with WSClient.connect(proxy_process.port, subprotocols=["base64"]) as ws:
        assert ws.accept is not None and ws.accept.subprotocol == "base64"
        ws.send_text(base64.b64encode(payload).decode())
        assert echo_backend.connection().wait_bytes(len(payload)) == payload
        received = bytearray()
        text = ""
        while len(received) < len(payload):
            event = ws.next_event()
            assert isinstance(event, TextMessage), f"expected TEXT frames, got {event!r}"
            text += event.data
            if event.message_finished:
                received += base64.b64decode(text, validate=True)
                text = ""
        assert bytes(received) == payload


def test_the_wsproto_client_with_binary_offered_negotiates_binary(
    proxy_process: ProxyProcess,
) -> None:
    """An independent client implementation accepts the 101 and sees subprotocol `binary`."""
    with WSClient.connect(proxy_process.port, subprotocols=["base64", "binary"]) as ws:
        assert ws.accept is not None and ws.accept.subprotocol == "binary"
        ws.send_binary(b"\x00\xff")
        assert ws.recv_bytes(2) == b"\x00\xff"


def test_the_wsproto_client_sees_a_rejection_for_an_unknown_subprotocol(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """Offering only `foo` makes the handshake fail with 400 before any target connection."""
    with pytest.raises(HandshakeRejected) as info:
        WSClient.connect(proxy_process.port, subprotocols=["foo"])
    assert info.value.status == 400
    assert echo_backend.accepted == 0
