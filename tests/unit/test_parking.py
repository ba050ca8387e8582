"""The parking rules of the repeater (issue #20 §1), over real loopback sockets."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from proxy.protocol.repeaterid import make_block
from proxy.transport import parking
from proxy.transport.parking import ParkingLot
from proxy.transport.reverse import ReverseListener, allowed
from tests.support.waiting import wait_for


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair: (server side as parked, the dialling VNC server)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        far = socket.create_connection(listener.getsockname()[:2], timeout=5)
        near, _ = listener.accept()
    return near, far


def wait_until(check: Callable[[], object]) -> None:
    wait_for(lambda: check() or None, "the parking lot's condition")


@pytest.fixture
def lot() -> Iterator[ParkingLot]:
    lot = ParkingLot(max_parked=3, max_per_ip=2)
    lot.start()
    yield lot
    lot.close()


def test_one_parked_connection_serves_one_session(lot: ParkingLot) -> None:
    near, far = pair()
    with far:
        assert lot.park("1234", near, "127.0.0.1") == parking.PARKED
        taken = lot.take("1234", 0)
        assert taken is not None and taken.sock is near
        assert lot.take("1234", 0) is None
        near.close()
    assert lot.events == {"parked": 1, "paired": 1}


def test_a_server_dialling_in_again_replaces_its_stale_connection(
        lot: ParkingLot, caplog: pytest.LogCaptureFixture) -> None:
    old_near, old_far = pair()
    new_near, new_far = pair()
    caplog.set_level(logging.INFO, "proxy.repeater")
    with old_far, new_far:
        lot.park("7", old_near, "127.0.0.1")
        assert lot.park("7", new_near, "127.0.0.2") == parking.REPLACED
        old_far.settimeout(5)
        assert old_far.recv(1) == b""  # the stale one is closed
        taken = lot.take("7", 0)
        assert taken is not None and taken.sock is new_near and taken.peer == "127.0.0.2"
        new_near.close()
    assert ("127.0.0.2: repeater ID 7 dialled in again; replacing the parked connection "
            "from 127.0.0.1") in caplog.messages


def test_limits_refuse_more(lot: ParkingLot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "proxy.repeater")
    socks = [pair() for _ in range(6)]
    try:
        assert lot.park("a", socks[0][0], "10.0.0.1") == parking.PARKED
        assert lot.park("b", socks[1][0], "10.0.0.1") == parking.PARKED
        assert lot.park("c", socks[2][0], "10.0.0.1") == parking.REFUSED_PER_IP
        assert lot.park("d", socks[3][0], "10.0.0.2") == parking.PARKED
        assert lot.park("e", socks[4][0], "10.0.0.3") == parking.REFUSED_FULL
        # Replacing does not count against the limits.
        assert lot.park("a", socks[5][0], "10.0.0.1") == parking.REPLACED
        assert lot.parked_ids() == ["a", "b", "d"]
    finally:
        for _near, far in socks:
            far.close()
    assert "10.0.0.1: repeater ID c refused: 2 connections parked from 10.0.0.1" \
        in caplog.messages
    assert "10.0.0.3: repeater ID e refused: 3 connections parked in all" in caplog.messages


def test_take_waits_for_the_server_to_dial_in(lot: ParkingLot) -> None:
    import threading
    near, far = pair()
    timer = threading.Timer(0.2, lot.park, ("late", near, "127.0.0.1"))
    timer.start()
    try:
        taken = lot.take("late", 5.0)
        assert taken is not None and taken.sock is near
    finally:
        timer.join()
        near.close()
        far.close()
    started = time.monotonic()
    assert lot.take("never", 0.2) is None
    assert time.monotonic() - started >= 0.2


def test_banner_is_held_and_a_vanished_server_is_dropped(
        lot: ParkingLot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "proxy.repeater")
    near, far = pair()
    lot.park("9", near, "127.0.0.1")
    far.sendall(b"RFB 003.008\n")
    gone_near, gone_far = pair()
    lot.park("10", gone_near, "127.0.0.1")
    gone_far.close()  # FIN while parked
    wait_until(lambda: lot.parked_ids() == ["9"])
    assert "127.0.0.1: parked repeater ID 10 dropped: server closed the connection" \
        in caplog.messages
    wait_until(lambda: lot.events["dropped"] == 1)
    taken = lot.take("9", 1.0)
    assert taken is not None
    wait_until(lambda: bytes(taken.held) == b"RFB 003.008\n")
    taken.sock.close()
    far.close()


def test_allowed_networks() -> None:
    import ipaddress
    nets = [ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("::1/128")]
    assert allowed("10.1.2.3", nets) and allowed("::1", nets)
    assert allowed("::ffff:10.1.0.9", nets)
    assert not allowed("10.2.0.1", nets) and not allowed("not-an-ip", nets)
    assert allowed("192.0.2.1", [])


def test_listener_parks_a_server_with_an_id_block(lot: ParkingLot) -> None:
    listen = socket.create_server(("127.0.0.1", 0))
    listener = ReverseListener([listen], lot, [], handshake_timeout=0.5)
    listener.start()
    try:
        server = socket.create_connection(listen.getsockname()[:2], timeout=5)
        server.sendall(make_block("5901")[:100])
        server.sendall(make_block("5901")[100:] + b"RFB 003.008\n")
        wait_until(lambda: lot.parked_ids() == ["5901"])
        silent = socket.create_connection(listen.getsockname()[:2], timeout=5)
        assert silent.recv(1) == b""  # no ID block within the deadline: closed
        wait_until(lambda: lot.events["refused_id"] == 1)
        taken = lot.take("5901", 1.0)
        assert taken is not None
        assert taken.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert taken.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
        wait_until(lambda: bytes(taken.held) == b"RFB 003.008\n" or taken.sock.recv(
            64, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"RFB 003.008\n")
        taken.sock.close()
        server.close()
        silent.close()
    finally:
        listener.close()


def test_a_server_parking_after_close_is_closed() -> None:
    lot = ParkingLot(max_parked=0, max_per_ip=0)
    lot.start()
    lot.close()
    near, far = pair()
    with far:
        assert lot.park("1", near, "127.0.0.1") == parking.CLOSED
        assert far.recv(1) == b""
    assert near.fileno() == -1


def test_handshakes_under_way_are_bounded(lot: ParkingLot,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "proxy.repeater")
    listen = socket.create_server(("127.0.0.1", 0))
    listener = ReverseListener([listen], lot, [], handshake_timeout=5.0, max_handshakes=1)
    listener.start()
    try:
        slow = socket.create_connection(listen.getsockname()[:2], timeout=5)
        slow.sendall(b"ID:")  # holds the one handshake slot
        extra = socket.create_connection(listen.getsockname()[:2], timeout=5)
        assert extra.recv(1) == b""  # refused at once, not after the deadline
        assert lot.events["refused_busy"] == 1
        assert "127.0.0.1: refused: 1 ID handshakes under way" in caplog.messages
        slow.sendall(make_block("x")[3:])  # the slot's handshake completes and frees it
        wait_until(lambda: lot.parked_ids() == ["x"])
        third = socket.create_connection(listen.getsockname()[:2], timeout=5)
        third.sendall(make_block("y"))
        wait_until(lambda: lot.parked_ids() == ["x", "y"])
        for sock in (slow, extra, third):
            sock.close()
    finally:
        listener.close()
