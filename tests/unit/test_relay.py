"""proxy.transport.relay over socketpair(): a wsproto client on one side, raw bytes on the other."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from wsproto import WSConnection
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, Pong

from proxy.protocol.closes import CloseInfo
from proxy.protocol.stream import ClientStream
from proxy.transport.closerequest import CloseRequest
from proxy.transport.closing import close_session
from proxy.transport.relay import Limits, Relay
from proxy.transport.sockio import SMALL_READ, StopSignal, next_read_size
from tests.conftest import TIMEOUT
from tests.support.waiting import wait_for
from tests.support.wspair import open_pair, raw_frame


@dataclass
class Rig:
    """A relay running in a thread between two socketpairs."""

    client: WSConnection
    client_app: socket.socket
    target_app: socket.socket
    relay: Relay
    result: list[CloseInfo] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.client_app.sendall(data)

    def events(self, until: type[Event], limit: float = TIMEOUT) -> list[Event]:
        """Read client-side events until one of type ``until`` arrives."""
        seen: list[Event] = []
        deadline = time.monotonic() + limit
        while not any(isinstance(e, until) for e in seen):
            self.client_app.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.client_app.recv(65536)
            self.client.receive_data(data or None)
            seen.extend(self.client.events())
            if not data:
                break
        return seen

    def target_read(self, size: int) -> bytes:
        got = bytearray()
        while len(got) < size:
            chunk = self.target_app.recv(size - len(got))
            if not chunk:
                break
            got += chunk
        return bytes(got)


@contextmanager
def rig(limits: Limits = Limits(close_timeout=TIMEOUT), leftover: bytes = b"",
        stop: StopSignal | None = None, close_request: CloseRequest | None = None,
        **stream_args: object) -> Iterator[Rig]:
    client, server = open_pair()
    client_app, client_end = socket.socketpair()
    target_end, target_app = socket.socketpair()
    for sock in (client_app, target_app):
        sock.settimeout(TIMEOUT)
    stream = ClientStream(server, **stream_args)  # type: ignore[arg-type]
    relay = Relay(client_end, target_end, stream, limits, stop, close_request=close_request)
    r = Rig(client, client_app, target_app, relay)

    def run() -> None:
        # As the handler does: the relay returns, then its owner closes both sockets.
        try:
            r.result.append(relay.run(leftover))
        finally:
            for sock in (client_end, target_end):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield r
    finally:
        client_app.close()
        target_app.close()
        thread.join(TIMEOUT)
    assert not thread.is_alive(), "relay did not finish"


def test_bytes_flow_both_ways() -> None:
    with rig() as r:
        r.send(r.client.send(Message(data=b"hello")))
        assert r.target_read(5) == b"hello"
        r.target_app.sendall(b"world")
        events = r.events(BytesMessage)
        assert events == [BytesMessage(data=b"world", frame_finished=True, message_finished=True)]


def test_frames_sent_one_byte_at_a_time_arrive_whole() -> None:
    with rig() as r:
        for byte in r.client.send(Message(data=b"partial frames")):
            r.send(bytes([byte]))
        assert r.target_read(14) == b"partial frames"


def test_bytes_that_arrived_with_the_handshake_are_relayed_first() -> None:
    leftover = raw_frame(0x2, b"early")
    with rig(leftover=leftover) as r:
        assert r.target_read(5) == b"early"


def test_target_eof_sends_pending_data_then_close_1000() -> None:
    with rig() as r:
        r.target_app.sendall(b"last words")
        r.target_app.shutdown(socket.SHUT_WR)
        events = r.events(CloseConnection)
        data = b"".join(e.data for e in events if isinstance(e, BytesMessage))
        assert data == b"last words"
        assert events[-1] == CloseConnection(code=1000, reason="Target closed")
        r.send(r.client.send(events[-1].response()))
    assert r.result[0].reason == "Target closed" and not r.result[0].by_client


def test_client_close_is_echoed_and_the_target_sees_eof_after_the_data() -> None:
    with rig() as r:
        r.send(r.client.send(Message(data=b"flush me")) +
               r.client.send(CloseConnection(code=1000, reason="done")))
        events = r.events(CloseConnection)
        assert events[-1] == CloseConnection(code=1000, reason="done")
        assert r.target_read(100) == b"flush me"  # then EOF (the read returned short)
    assert r.result[0].by_client and r.result[0].code == 1000


def test_client_disappearing_closes_the_target() -> None:
    with rig() as r:
        r.send(r.client.send(Message(data=b"x")))
        assert r.target_read(1) == b"x"
        r.client_app.shutdown(socket.SHUT_RDWR)
        assert r.target_app.recv(10) == b""
    assert r.result[0].code == 1006


def test_ping_is_answered() -> None:
    with rig() as r:
        r.send(r.client.send(Ping(payload=b"are you there")))
        assert Pong(payload=b"are you there") in r.events(Pong)


def test_heartbeat_pings_the_client() -> None:
    with rig(Limits(heartbeat=0.05, close_timeout=TIMEOUT)) as r:
        assert any(isinstance(e, Ping) for e in r.events(Ping))


def test_close_deadline_ends_a_session_whose_client_never_answers() -> None:
    with rig(Limits(close_timeout=0.2)) as r:
        r.target_app.shutdown(socket.SHUT_WR)
        assert isinstance(r.events(CloseConnection)[-1], CloseConnection)
        started = time.monotonic()
        r.client_app.settimeout(TIMEOUT)
        assert r.client_app.recv(10) == b""  # the relay gave up waiting for our Close
        assert time.monotonic() - started < TIMEOUT


def test_backpressure_stops_reading_a_client_whose_target_does_not_read() -> None:
    """What the relay takes from the client stays within high-water + one read; no byte lost."""
    limits = Limits(high_water=64 * 1024, recv_size=16 * 1024, close_timeout=TIMEOUT)
    count, size, coalesce = 200, 65536, 16 * 1024
    with rig(limits, coalesce=coalesce) as r:
        frame = r.client.send(Message(data=b"z" * size))
        sender = threading.Thread(target=lambda: r.client_app.sendall(frame * count))
        sender.start()
        try:
            # The relay stops reading the client once its buffer for the target is full.
            wait_for(lambda: len(r.relay.to_target) >= limits.high_water,
                     "the relay to stop reading the client", 4 * TIMEOUT)
            assert len(r.relay.to_target) <= limits.high_water + limits.recv_size + coalesce
            assert r.relay.received_from_client < count * len(frame) // 4
            assert sender.is_alive()  # the client is blocked by TCP-style backpressure
            assert r.target_read(count * size) == b"z" * (count * size)
        finally:
            sender.join(TIMEOUT)
        assert not sender.is_alive()


def test_close_session_sends_1011_and_waits_for_the_reply() -> None:
    client, server = open_pair()
    client_app, client_end = socket.socketpair()
    client_app.settimeout(TIMEOUT)
    stream = ClientStream(server)
    thread = threading.Thread(target=close_session, args=(
        client_end, stream, 1011, "Failed to connect to downstream server", Limits()))
    thread.start()
    try:
        client.receive_data(client_app.recv(1024))
        (event,) = list(client.events())
        assert event == CloseConnection(code=1011, reason="Failed to connect to downstream server")
        client_app.sendall(client.send(event.response()))
        thread.join(TIMEOUT)
        assert not thread.is_alive() and stream.finished
    finally:
        client_app.close()
        client_end.close()


def test_the_stop_signal_closes_every_session_with_1001() -> None:
    stop = StopSignal()
    try:
        with rig(stop=stop) as first, rig(stop=stop) as second:
            stop.set()
            for r in (first, second):
                close = r.events(CloseConnection)[-1]
                assert close == CloseConnection(code=1001, reason="Server shutting down")
                r.send(r.client.send(close.response()))
                assert r.target_app.recv(10) == b""
    finally:
        stop.close()


def test_a_close_request_closes_its_session_alone() -> None:
    """An operator's close (issue #21) goes through the relay's close path: the Close with
    the asked code and reason, then the target's EOF; the other session relays on."""
    stop, request, other = StopSignal(), CloseRequest(), CloseRequest()
    try:
        with rig(stop=stop, close_request=request) as closed, \
                rig(stop=stop, close_request=other) as kept:
            assert request.request(4001, "maintenance")
            assert not request.request(4002, "twice")  # the first request stands
            close = closed.events(CloseConnection)[-1]
            assert close == CloseConnection(code=4001, reason="maintenance")
            closed.send(closed.client.send(close.response()))
            assert closed.target_app.recv(10) == b""
            kept.send(kept.client.send(Message(data=b"abc")))
            assert kept.target_read(3) == b"abc"
            assert closed.result == [CloseInfo(4001, "maintenance", by_client=False)]
    finally:
        stop.close()
        request.close()
        other.close()
    assert not request.request(1000, "after the end")


def test_a_protocol_error_closes_1002_then_half_closes_the_client() -> None:
    """RFC 6455 §7.1.7: after failing the connection the server ends TCP; no reset."""
    with rig() as r:
        r.send(raw_frame(0x2, b"x", masked=False))
        events = r.events(CloseConnection)
        assert events[-1] == CloseConnection(code=1002, reason="Procotol error: Frame not masked")
        started = time.monotonic()
        assert r.client_app.recv(10) == b""  # our FIN, without waiting for the client's Close
        assert time.monotonic() - started < TIMEOUT / 2
    assert r.result[0].code == 1002


def test_reads_are_small_after_small_ones_and_full_after_large_ones() -> None:
    """Issue #19: a 256 KiB recv() buffer is mapped and unmapped by glibc on every read,
    so a session of small messages reads 16 KiB at a time; a stream reads in full."""
    assert next_read_size(0, 256 * 1024) == SMALL_READ == 16 * 1024
    assert next_read_size(SMALL_READ - 1, 256 * 1024) == SMALL_READ
    assert next_read_size(SMALL_READ, 256 * 1024) == 256 * 1024
    assert next_read_size(256 * 1024, 256 * 1024) == 256 * 1024
    assert next_read_size(0, 4096) == next_read_size(8192, 4096) == 4096  # never above full


def test_large_data_after_small_reads_arrives_whole_both_ways() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    with rig() as r:
        r.send(r.client.send(Message(data=b"hi")))
        assert r.target_read(2) == b"hi"
        r.target_app.sendall(b"ok")
        assert [e.data for e in r.events(BytesMessage) if isinstance(e, BytesMessage)] == [b"ok"]
        sender = threading.Thread(target=r.send, args=(r.client.send(Message(data=big)),))
        sender.start()
        try:
            assert r.target_read(len(big)) == big
        finally:
            sender.join(TIMEOUT)
        writer = threading.Thread(target=r.target_app.sendall, args=(big,))
        writer.start()
        got = bytearray()
        try:
            while len(got) < len(big):
                got += b"".join(e.data for e in r.events(BytesMessage)
                                if isinstance(e, BytesMessage))
        finally:
            writer.join(TIMEOUT)
        assert bytes(got) == big
