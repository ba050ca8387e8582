"""Real client libraries against the real command and an echo backend (the seed scenario)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import simple_websocket
import websocket

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend, ScriptedBackend
from tests.support.process import ProxyProcess
from tests.support.wsclient import DrainingClient

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


def recv_exactly(ws: websocket.WebSocket, n: int) -> bytes:
    """websocket-client: read messages until ``n`` bytes arrived (the proxy may split them)."""
    buf = bytearray()
    while len(buf) < n:
        data = ws.recv()
        buf += data.encode() if isinstance(data, str) else data
    assert len(buf) == n, bytes(buf)
    return bytes(buf)


def close_quietly(ws: simple_websocket.Client) -> None:
    """Close a simple-websocket client (even if the server closed first) and join its thread."""
    try:
        ws.close()
    except simple_websocket.ConnectionClosed:
        pass
    ws.sock.close()
    ws.thread.join(TIMEOUT)
    assert not ws.thread.is_alive()


@pytest.fixture
def wsc(proxy_process: ProxyProcess) -> Iterator[websocket.WebSocket]:
    ws = websocket.create_connection(proxy_process.url, timeout=TIMEOUT)
    yield ws
    ws.close(timeout=TIMEOUT)


def test_websocket_client_send_str_reaches_the_target_as_hello(
    wsc: websocket.WebSocket, echo_backend: EchoBackend
) -> None:
    """Seed scenario: `ws.send("Hello")` (a TEXT frame) arrives at the target as `Hello`."""
    wsc.send("Hello")
    assert echo_backend.connection().wait_bytes(5) == b"Hello"
    assert recv_exactly(wsc, 5) == b"Hello"


def test_websocket_client_send_bytes_with_the_default_opcode_reaches_the_target(
    wsc: websocket.WebSocket, echo_backend: EchoBackend
) -> None:
    """`ws.send(b"Hello")` also sends TEXT in websocket-client 1.x; the target gets `Hello`."""
    wsc.send(b"Hello")
    assert echo_backend.connection().wait_bytes(5) == b"Hello"
    assert recv_exactly(wsc, 5) == b"Hello"


def test_websocket_client_send_binary_round_trips_every_byte_value(
    wsc: websocket.WebSocket, echo_backend: EchoBackend
) -> None:
    """`ws.send_binary(bytes(range(256)) * 64)` comes back identical, as binary data."""
    payload = bytes(range(256)) * 64
    wsc.send_binary(payload)
    assert echo_backend.connection().wait_bytes(len(payload)) == payload
    opcode, data = wsc.recv_data()
    assert opcode == websocket.ABNF.OPCODE_BINARY
    assert data + recv_exactly(wsc, len(payload) - len(data)) == payload


def test_websocket_client_offering_binary_gets_binary_and_a_clean_close(
    proxy_process: ProxyProcess,
) -> None:
    """websocket-client with subprotocols=["binary"] negotiates it and closes with 1000."""
    ws = websocket.create_connection(proxy_process.url, timeout=TIMEOUT, subprotocols=["binary"])
    try:
        assert ws.getsubprotocol() == "binary"
        ws.send_binary(b"\x00\x01\x02")
        assert recv_exactly(ws, 3) == b"\x00\x01\x02"
    finally:
        ws.close(timeout=TIMEOUT)
    assert ws.getstatus() == 101


def test_a_browser_style_client_offering_binary_round_trips_binary_data(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """simple-websocket (DrainingClient) with subprotocol `binary`, like noVNC in a browser."""
    ws = DrainingClient.connect(
        proxy_process.url, subprotocols=["binary"], receive_bytes=65536
    )
    try:
        assert ws.subprotocol == "binary"
        ws.send(b"\x00\x01RFB")
        buf = b""
        while len(buf) < 5:
            data = ws.receive(timeout=TIMEOUT)
            assert isinstance(data, bytes), f"expected binary data, got {data!r}"
            buf += data
        assert buf == b"\x00\x01RFB"
        assert echo_backend.connection().wait_bytes(5) == b"\x00\x01RFB"
    finally:
        close_quietly(ws)


def test_a_browser_style_client_receives_a_banner_sent_right_after_the_upgrade(
    start_proxy: StartProxy,
) -> None:
    """A VNC-like target speaks first: the banner sent with the 101 reaches the client."""
    with ScriptedBackend(b"RFB 003.008\n") as backend:
        proxy = start_proxy(backend.port)
        ws = DrainingClient.connect(proxy.url, subprotocols=["binary"], receive_bytes=65536)
        try:
            assert ws.receive(timeout=TIMEOUT) == b"RFB 003.008\n"
        finally:
            close_quietly(ws)


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").is_file():
        pytest.skip("Node package ws missing: run `npm install --prefix tests/node`")
    return node


@pytest.mark.node
def test_the_node_ws_client_negotiates_binary_and_round_trips_binary_and_text(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """Node `ws` 8.x: protocol `binary`, binary + text message echoed as binary, close 1000."""
    node = _node_or_skip()
    binary = bytes([0, 1, 2, 250, 255])
    text = "Hello \u00e9"
    result = subprocess.run(
        [node, str(NODE_DIR / "client.mjs"), proxy_process.url, binary.hex(), text],
        capture_output=True,
        timeout=4 * TIMEOUT,
        cwd=NODE_DIR,
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    events = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert events[0] == {"event": "open", "protocol": "binary"}
    messages = [e for e in events if e["event"] == "message"]
    assert messages and all(m["binary"] is True for m in messages)
    echoed = bytes.fromhex("".join(m["hex"] for m in messages))
    assert echoed == binary + text.encode()
    assert events[-1] == {"event": "close", "code": 1000, "reason": "bye"}
    assert echo_backend.connection().wait_bytes(len(echoed)) == echoed
