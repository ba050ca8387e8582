"""Issue #15 over socketpair(): every session ends, whatever its peers do.

A side that is not read because the other side's buffer is full must still be noticed
when it leaves (FIN or reset), and a peer that takes nothing for ``--stall-timeout``
ends the session. Each test measures how long the relay took after the event.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from wsproto.events import CloseConnection, Message

from proxy.transport.relay import CLIENT_LEFT, TARGET_LEFT, Limits
from tests.conftest import TIMEOUT, scaled
from tests.support.waiting import wait_for
from tests.unit.test_relay import Rig, rig

CLOSE = 0.5  # seconds: the close timeout of these relays
SMALL = dict(high_water=64 * 1024, recv_size=16 * 1024, close_timeout=CLOSE, stall_timeout=0.0)
#: More than the kernel buffers of a socketpair hold (both ends, in bytes).
BUFFERS = 1 << 21


def stall_client_direction(r: Rig) -> None:
    """Send 32 KiB frames until the relay stops reading the client (the target does not
    read), stopping before the client's own socket is full so a Close can still go out."""
    frame = r.client.send(Message(data=b"c" * 32 * 1024))
    high_water = r.relay.limits.high_water
    for sent in range(len(frame), 4 * (high_water + BUFFERS), len(frame)):
        r.client_app.sendall(frame)
        # Either the relay took the frame, or its buffer for the target is full: then it
        # no longer reads the client (proxy.transport.relay._update_interest).
        wait_for(lambda: r.relay.received_from_client == sent
                 or len(r.relay.to_target) >= high_water, "the relay to take the frame")
        if len(r.relay.to_target) >= high_water:
            return
    raise AssertionError("the relay never stopped reading the client")


def stall_target_direction(r: Rig) -> None:
    """Send from the target until the relay stops reading it (the client does not read)."""
    chunk = b"t" * 32 * 1024
    high_water = r.relay.limits.high_water
    for sent in range(len(chunk), 4 * (high_water + BUFFERS), len(chunk)):
        r.target_app.sendall(chunk)
        wait_for(lambda: r.relay.received_from_target == sent
                 or len(r.relay.to_client) >= high_water, "the relay to take the bytes")
        if len(r.relay.to_client) >= high_water:
            return
    raise AssertionError("the relay never stopped reading the target")


def ended_within(r: Rig, limit: float) -> float:
    """Seconds until the relay returned; fails if it takes longer than ``limit`` (scaled)."""
    started = time.monotonic()
    wait_for(lambda: r.result, f"the relay to end within {limit} s", scaled(limit))
    return time.monotonic() - started


def test_a_client_that_sends_close_and_fin_while_stalled_is_reaped() -> None:
    with rig(Limits(**SMALL)) as r:  # type: ignore[arg-type]
        stall_client_direction(r)
        r.client_app.sendall(r.client.send(CloseConnection(code=1000)))
        r.client_app.shutdown(socket.SHUT_WR)
        assert ended_within(r, CLOSE + 1) >= CLOSE * 0.9  # the target had its chance
        assert r.relay.reaped == CLIENT_LEFT
        assert r.result[0].code == 1006 and r.result[0].by_client


def test_a_client_that_vanishes_while_stalled_is_reaped() -> None:
    with rig(Limits(**SMALL)) as r:  # type: ignore[arg-type]
        stall_client_direction(r)
        r.client_app.close()  # POLLHUP on the relay's end, as a reset is on TCP
        ended_within(r, CLOSE + 1)
        assert r.relay.reaped == CLIENT_LEFT


def test_a_stalled_client_whose_target_drains_in_time_is_relayed_to_the_end() -> None:
    """The FIN of a stalled client gives the target the close timeout: no byte is lost."""
    with rig(Limits(**{**SMALL, "close_timeout": TIMEOUT})) as r:  # type: ignore[arg-type]
        stall_client_direction(r)
        sent = r.relay.received_from_client  # lower bound; the rest is in the socket
        r.client_app.sendall(r.client.send(CloseConnection(code=1000)))
        r.client_app.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := r.target_app.recv(65536):
            got += chunk
        assert len(got) >= sent - 64 * 1024 and set(got) == {ord("c")}
        assert len(got) % (32 * 1024) == 0  # whole messages, nothing dropped
        ended_within(r, TIMEOUT)
        assert r.relay.reaped is None
        assert r.result[0].code == 1000 and r.result[0].by_client


def test_a_target_that_sends_fin_while_the_client_does_not_read_is_reaped() -> None:
    with rig(Limits(**SMALL)) as r:  # type: ignore[arg-type]
        stall_target_direction(r)
        r.target_app.shutdown(socket.SHUT_WR)
        assert ended_within(r, CLOSE + 1) >= CLOSE * 0.9
        assert r.relay.reaped == TARGET_LEFT


def test_a_target_that_vanishes_while_the_client_does_not_read_is_reaped() -> None:
    with rig(Limits(**SMALL)) as r:  # type: ignore[arg-type]
        stall_target_direction(r)
        r.target_app.close()
        ended_within(r, CLOSE + 1)
        assert r.relay.reaped == TARGET_LEFT


def test_a_target_that_stops_reading_ends_the_session_with_1011_after_the_stall_timeout() -> None:
    with rig(Limits(**{**SMALL, "stall_timeout": 0.5})) as r:  # type: ignore[arg-type]
        stall_client_direction(r)
        started = time.monotonic()
        closes = [e for e in r.events(CloseConnection) if isinstance(e, CloseConnection)]
        assert (closes[0].code, closes[0].reason) == (1011, "Target stopped reading")
        assert time.monotonic() - started < scaled(0.5 + 1)
        r.client_app.sendall(r.client.send(closes[0].response()))
        ended_within(r, TIMEOUT)
        assert r.result[0].reason == "Target stopped reading"


def test_a_client_that_stops_reading_is_closed_and_dropped_after_the_stall_timeout() -> None:
    with rig(Limits(**{**SMALL, "stall_timeout": 0.5})) as r:  # type: ignore[arg-type]
        stall_target_direction(r)
        # The Close waits behind data the client does not read: the close timeout ends it.
        ended_within(r, 0.5 + CLOSE + 1)
        assert (r.result[0].code, r.result[0].reason) == (1011, "Client stopped reading")


def test_a_slow_target_that_keeps_taking_bytes_is_not_a_stall() -> None:
    frame_size, count = 16 * 1024, 300
    with rig(Limits(**{**SMALL, "stall_timeout": 0.5})) as r:  # type: ignore[arg-type]
        frame = r.client.send(Message(data=b"c" * frame_size))

        def send() -> None:
            with contextlib.suppress(OSError):  # the rig closes the socket at the end
                r.client_app.sendall(frame * count)

        sender = threading.Thread(target=send)
        sender.start()
        got = 0
        r.target_app.setblocking(False)
        for _ in range(8):  # 2.4 s in all, nearly five stall timeouts
            time.sleep(0.3)  # not a wait: the pace of a slow target
            with contextlib.suppress(BlockingIOError):
                while chunk := r.target_app.recv(1 << 20):
                    got += len(chunk)
        assert 0 < got < frame_size * count  # it was slow, and it was taking bytes
        assert not r.result and r.relay.stream.close_info is None
    sender.join(TIMEOUT)
