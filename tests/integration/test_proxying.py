"""Bytes through the real command: binary and text relaying, backpressure, many connections."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from wsproto.events import BytesMessage, Pong

from tests.conftest import TIMEOUT
from tests.integration.conftest import StartProxy
from tests.support.backends import ConnRecord, EchoBackend, SinkBackend
from tests.support.process import ProxyProcess
from tests.support.wsclient import OP_BINARY, OP_CONT, OP_TEXT, WSClient, build_frame

pytestmark = pytest.mark.integration

KiB = 1024
MiB = 1024 * KiB
HIGH_WATER = 256 * KiB


def echo_through(ws: WSClient, payload: bytes) -> bytes:
    """Send ``payload`` as one binary message from a thread while reading the echo here."""
    frame = ws.ws.send(BytesMessage(data=payload))
    errors: list[BaseException] = []

    def send() -> None:
        try:
            ws.sock.sendall(frame)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    sender = threading.Thread(target=send, name="echo-sender")
    sender.start()
    try:
        received = ws.recv_bytes(len(payload), timeout=4 * TIMEOUT)
    finally:
        sender.join(4 * TIMEOUT)
    assert not sender.is_alive(), "sender thread still blocked"
    assert not errors, errors
    return received


def assert_nothing_arrives(rec: ConnRecord, window: float = 0.3) -> None:
    """Bounded negative check: no byte reaches the backend within ``window`` seconds."""
    assert not rec.wait_count(1, timeout=window), f"backend unexpectedly got {rec.data!r}"


def ping_barrier(ws: WSClient, payload: bytes = b"barrier") -> bytes:
    """Ping and wait for the pong: the proxy has processed every frame sent before it.

    Returns the binary data that arrived before the pong (echoes are not held back).
    """
    ws.ping(payload)
    data = bytearray()
    while True:
        event = ws.next_event()
        if isinstance(event, BytesMessage):
            data += event.data
            continue
        assert isinstance(event, Pong) and event.payload == payload, event
        return bytes(data)


@pytest.mark.parametrize("size", [1, 64 * KiB, 16 * MiB], ids=["1B", "64KiB", "16MiB"])
def test_a_binary_message_is_echoed_intact_through_the_proxy(
    proxy_process: ProxyProcess, echo_backend: EchoBackend, size: int
) -> None:
    """One binary message of 1 B / 64 KiB / 16 MiB reaches the target and comes back intact."""
    payload = os.urandom(size)
    with WSClient.connect(proxy_process.port) as ws:
        assert echo_through(ws, payload) == payload
        assert echo_backend.connection().wait_bytes(size) == payload


def test_many_binary_messages_arrive_in_order(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """100 small messages are written to the target back to back, in order."""
    messages = [struct.pack("!I", i) * 8 for i in range(100)]
    with WSClient.connect(proxy_process.port) as ws:
        for message in messages:
            ws.send_binary(message)
        expected = b"".join(messages)
        assert ws.recv_bytes(len(expected)) == expected
    assert echo_backend.connection().wait_bytes(len(expected)) == expected


def test_a_binary_fragment_reaches_the_target_before_the_message_is_finished(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """Binary data is streamed: the first fragment is forwarded without waiting for FIN."""
    with WSClient.connect(proxy_process.port) as ws:
        ws.send_binary(b"first-", fin=False)
        rec = echo_backend.connection()
        assert rec.wait_bytes(6) == b"first-"
        ws.send_binary(b"last", fin=True)
        assert rec.wait_bytes(10) == b"first-last"
        assert ws.recv_bytes(10) == b"first-last"


def test_a_text_message_is_accepted_by_default_and_forwarded_as_utf8(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """A TEXT frame goes to the target as its UTF-8 bytes; the echo comes back as binary."""
    text = "Hello, w\u00f6rld \u2603"
    with WSClient.connect(proxy_process.port) as ws:
        ws.send_text(text)
        assert echo_backend.connection().wait_bytes(len(text.encode())) == text.encode()
        event = ws.next_event()
        assert isinstance(event, BytesMessage), f"target data must come back binary: {event!r}"
        data = bytes(event.data) + ws.recv_bytes(len(text.encode()) - len(event.data))
        assert data == text.encode()


def test_each_text_fragment_is_forwarded_as_it_arrives(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """Text streams like binary: a fragment reaches the target before the message ends."""
    with WSClient.connect(proxy_process.port) as ws:
        ws.send_text("Hel", fin=False)
        rec = echo_backend.connection()
        assert rec.wait_bytes(3) == b"Hel"
        assert ws.recv_bytes(3) == b"Hel"
        ws.send_text("lo", fin=True)
        assert rec.wait_bytes(5) == b"Hello"
        assert ws.recv_bytes(2) == b"lo"


def test_a_utf8_character_split_across_text_fragments_is_forwarded_intact(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """`w\u00f6rld` sent as TEXT `w\\xc3` + CONT `\\xb6rld` is valid and reaches the target."""
    with WSClient.connect(proxy_process.port) as ws:
        ws.send_raw(build_frame(OP_TEXT, b"w\xc3", fin=False))
        ws.send_raw(build_frame(OP_CONT, b"\xb6rld", fin=True))
        expected = "w\u00f6rld".encode()
        assert echo_backend.connection().wait_bytes(len(expected)) == expected
        assert ws.recv_bytes(len(expected)) == expected


def test_a_ping_inside_a_fragmented_binary_message_does_not_break_it(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """BINARY(FIN=0), PING, CONT(FIN=1): pong comes back and the data arrives whole."""
    with WSClient.connect(proxy_process.port) as ws:
        ws.send_raw(build_frame(OP_BINARY, b"abc", fin=False))
        early = ping_barrier(ws, b"mid")
        ws.send_raw(build_frame(OP_CONT, b"def", fin=True))
        assert echo_backend.connection().wait_bytes(6) == b"abcdef"
        assert early + ws.recv_bytes(6 - len(early)) == b"abcdef"


def _tcp_max(name: str) -> int:
    """The autotuning maximum of tcp_rmem / tcp_wmem (third field), 4 MiB if unreadable."""
    try:
        return int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * MiB


def test_the_proxy_stops_reading_the_client_when_the_target_does_not_read(
    start_proxy: StartProxy,
) -> None:
    """A target that never reads: the client gets blocked after a bounded amount; nothing lost.

    Bound = high-water mark + every kernel buffer on the way (client SNDBUF, proxy RCVBUF and
    SNDBUF, backend RCVBUF, each at its autotuning maximum) + 1 MiB slack. A proxy that
    buffered without limit would keep reading and the client would exceed it.
    """
    block = os.urandom(64 * KiB)

    def payload(k: int) -> bytes:
        return struct.pack("!Q", k) + block[8:]

    with SinkBackend(reading=False) as sink:
        proxy = start_proxy(sink.port)
        with WSClient.connect(proxy.port) as ws:
            rec = sink.connection()
            wmem, rmem = _tcp_max("tcp_wmem"), _tcp_max("tcp_rmem")
            client_sndbuf = max(ws.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), wmem)
            backend_rcvbuf = max(rec.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), rmem)
            bound = HIGH_WATER + client_sndbuf + rmem + wmem + backend_rcvbuf + MiB
            sent, k, off = 0, 0, 0
            frame = build_frame(OP_BINARY, payload(0))
            deadline = time.monotonic() + 6 * TIMEOUT
            ws.sock.settimeout(0)
            while True:
                assert sent <= bound, f"client sent {sent} bytes without blocking (>{bound})"
                assert time.monotonic() < deadline, f"never blocked; sent {sent} bytes"
                try:
                    n = ws.sock.send(frame[off:])
                except BlockingIOError:
                    n = 0
                if n:
                    sent, off = sent + n, off + n
                    if off == len(frame):
                        k, off = k + 1, 0
                        frame = build_frame(OP_BINARY, payload(k))
                    continue
                _, writable, _ = select.select([], [ws.sock], [], 1.0)
                if not writable:
                    break  # blocked for a whole second: backpressure reached the client
            ws.sock.settimeout(4 * TIMEOUT)
            assert sent > HIGH_WATER, f"blocked after only {sent} bytes"
            assert rec.count == 0
            sink.start_reading()
            if off:
                ws.sock.sendall(frame[off:])
                k += 1
            expected = b"".join(payload(i) for i in range(k))
            assert rec.wait_bytes(len(expected), timeout=6 * TIMEOUT) == expected
            ping_barrier(ws, b"still alive")


def test_two_hundred_concurrent_connections_each_echo_their_own_data(
    proxy_process: ProxyProcess, echo_backend: EchoBackend
) -> None:
    """200 clients connect, all wait until every one is open, then each echoes 4 KiB."""
    n = 200
    barrier = threading.Barrier(n, timeout=6 * TIMEOUT)
    errors: list[BaseException] = []
    done: list[int] = []
    lock = threading.Lock()

    def session(i: int) -> None:
        try:
            with WSClient.connect(proxy_process.port, timeout=6 * TIMEOUT) as ws:
                barrier.wait()
                payload = struct.pack("!I", i) * 1024
                ws.send_binary(payload[:1000])
                ws.send_binary(payload[1000:])
                assert ws.recv_bytes(len(payload), timeout=6 * TIMEOUT) == payload
                ws.close(1000, "done")
                close = ws.recv_close(timeout=6 * TIMEOUT)
                assert (close.code, close.reason) == (1000, "done")
            with lock:
                done.append(i)
        except BaseException as exc:
            barrier.abort()
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,), name=f"client-{i}") for i in range(n)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, start + 12 * TIMEOUT - time.monotonic()))
    assert not [t.name for t in threads if t.is_alive()], "sessions still running"
    assert not errors, f"{len(errors)} sessions failed, first: {errors[0]!r}"
    assert sorted(done) == list(range(n))
    assert echo_backend.accepted == n
