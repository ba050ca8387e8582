"""proxy.transport.httpio and the no-wait reads of issue #19, on socketpairs.

A request already there is read without switching the socket to timeout mode (each
timed call is a poll() plus the call, each a GIL hand-off); one that is not there yet is
still waited for within the deadline.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from proxy.errors import RequestTimeout
from proxy.transport import tls
from proxy.transport.httpio import RequestReader, SocketWriter
from proxy.transport.sockio import recv_ready, recv_within, send_ready
from tests.conftest import TIMEOUT

REQUEST = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\x82\x00"


def test_a_request_already_there_is_read_without_a_timeout_mode() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(REQUEST)
        assert tls.sniff(a, TIMEOUT) is tls.Sniff.PLAIN
        reader = RequestReader(a)
        assert reader.wait_first_byte(TIMEOUT)
        reader.start_request(TIMEOUT)
        assert reader.readline() == b"GET / HTTP/1.1\r\n"
        assert reader.readline() == b"Host: h\r\n"
        assert reader.readline() == b"\r\n"
        assert reader.take_buffered() == b"\x82\x00"
        SocketWriter(a, TIMEOUT).write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        assert b.recv(100) == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
        assert a.gettimeout() is None  # never switched: no poll() before each call


def test_a_request_not_there_yet_is_waited_for_within_the_deadline() -> None:
    a, b = socket.socketpair()
    with a, b:
        timer = threading.Timer(0.1, b.sendall, (REQUEST,))
        timer.start()
        try:
            assert tls.sniff(a, TIMEOUT) is tls.Sniff.PLAIN
            reader = RequestReader(a)
            reader.start_request(TIMEOUT)
            assert reader.readline() == b"GET / HTTP/1.1\r\n"
        finally:
            timer.join()


def test_the_deadline_still_bounds_a_request_that_stops_coming() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"GET / HT")
        reader = RequestReader(a)
        reader.start_request(0.1)
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            reader.readline()
        assert 0.05 < time.monotonic() - started < TIMEOUT


def test_the_no_wait_calls_say_nothing_is_there_instead_of_waiting() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert recv_ready(a, 10) is None
        b.sendall(b"xy")
        assert recv_ready(a, 1, socket.MSG_PEEK) == b"x"
        assert recv_ready(a, 10) == b"xy"
        a.settimeout(TIMEOUT)  # timeout mode: left to the timed call
        b.sendall(b"z")
        assert recv_ready(a, 10) is None
        assert send_ready(a, b"w") == 0
        a.settimeout(None)
        assert send_ready(a, b"w") == 1
        assert b.recv(10) == b"w"
        b.close()
        assert recv_ready(a, 10) == b"z"
        assert recv_ready(a, 10) == b""  # EOF


def test_a_write_the_socket_cannot_take_at_once_is_finished_in_timeout_mode() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = bytes(range(256)) * 4096  # 1 MiB: more than the buffers hold
        got = bytearray()

        def drain() -> None:
            while len(got) < len(data):
                chunk = b.recv(65536)
                if not chunk:
                    return
                got.extend(chunk)

        reader = threading.Thread(target=drain)
        reader.start()
        try:
            assert SocketWriter(a, TIMEOUT).write(data) == len(data)
        finally:
            reader.join(TIMEOUT)
        assert bytes(got) == data


def test_recv_within_reads_what_is_there_waits_for_the_rest_and_keeps_the_deadline() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"ID:")
        assert recv_within(a, 10, time.monotonic() + TIMEOUT) == b"ID:"
        threading.Timer(0.05, b.sendall, (b"42",)).start()
        assert recv_within(a, 10, time.monotonic() + TIMEOUT) == b"42"
        with pytest.raises(TimeoutError):
            recv_within(a, 10, time.monotonic() - 1)  # passed already: no call at all
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            recv_within(a, 10, started + 0.1)  # passes while waiting
        assert 0.05 < time.monotonic() - started < TIMEOUT
        b.close()
        assert recv_within(a, 10, time.monotonic() + TIMEOUT) == b""  # EOF
