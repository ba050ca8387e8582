"""Peers that try to make the proxy hold memory (issue #15 §2, docs/reliability.rst).

Used by ``tests/integration/test_bounds.py`` (CI sizes) and ``scripts/memory-bound``
(the issue's full sizes). Stdlib only; every loop is bounded in count and time, and every
socket is closed when the ``Clients`` block ends.

* ``unfinished_text``: clients that each send one text frame of SIZE bytes without FIN,
  so the message never completes (a proxy that holds text until complete keeps it all).
* ``deflate_bombs``: clients that each send one small permessage-deflate message that
  inflates to SIZE bytes, to a target that never reads.
* ``push_until_stalled``: send until the proxy stops reading a socket (backpressure),
  and no further, so that a FIN sent next still reaches the proxy's host.
* ``rss``: a process's resident set from /proc.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time
import zlib
from types import TracebackType

from tests.conftest import TIMEOUT
from tests.support.hostile import handshake

#: A zero masking key leaves the payload as it is: valid (RFC 6455 §5.3), and a client
#: can send megabytes without masking them in Python.
ZERO_KEY = b"\0\0\0\0"
CHUNK = 1 << 20  # bytes per sendall()


def rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS: line in /proc/PID/status")


def header(first: int, size: int) -> bytes:
    """A masked client frame header with a zero key for a ``size``-byte payload."""
    if size < 126:
        return bytes([first, 0x80 | size]) + ZERO_KEY
    if size < 65536:
        return bytes([first, 0x80 | 126]) + struct.pack("!H", size) + ZERO_KEY
    return bytes([first, 0x80 | 127]) + struct.pack("!Q", size) + ZERO_KEY


class Clients:
    """Open upgraded connections, closed (all of them) when the block ends."""

    def __init__(self, port: int, count: int, extra: str = "",
                 timeout: float = 10.0) -> None:
        self.socks: list[socket.socket] = []
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                self.socks.append(sock)
                sock.sendall(handshake(extra=extra))
                _expect_101(sock, extra)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def _expect_101(sock: socket.socket, extra: str) -> None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        assert chunk, f"EOF during the handshake: {buf!r}"
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 101 "), buf
    if "permessage-deflate" in extra:
        assert b"permessage-deflate" in buf.lower(), f"compression not negotiated: {buf!r}"


def unfinished_text(clients: Clients, size: int, time_limit: float) -> None:
    """Each client sends a ``size``-byte text frame without FIN (the message never ends)."""
    piece = b"a" * CHUNK
    deadline = time.monotonic() + time_limit
    for sock in clients.socks:
        sock.sendall(header(0x01, size))  # FIN clear, opcode 1 (text)
    for sent in range(0, size, CHUNK):
        for sock in clients.socks:  # round robin: every message grows together
            assert time.monotonic() < deadline, f"sending took over {time_limit} s"
            sock.sendall(piece[:min(CHUNK, size - sent)])


def deflate_message(size: int) -> bytes:
    """One masked binary frame with RSV1 set: ``size`` zero bytes, deflated (RFC 7692)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflater.compress(bytes(size)) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    body = body[:-4]
    return header(0x80 | 0x40 | 0x02, len(body)) + body


def deflate_bombs(clients: Clients, size: int) -> int:
    """Each client sends one message inflating to ``size`` bytes; returns its wire size."""
    message = deflate_message(size)
    for sock in clients.socks:
        sock.sendall(message)
    return len(message)


def settle(pid: int, seconds: float = 1.0, limit: float = 10.0) -> int:
    """RSS once it stopped growing for ``seconds`` (or after ``limit``)."""
    deadline = time.monotonic() + limit
    last = rss(pid)
    stable = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - stable < seconds:
        time.sleep(0.1)
        now = rss(pid)
        if now > last:
            last, stable = now, time.monotonic()
    return last


def unsent(sock: socket.socket) -> int:
    """Bytes in our send queue not yet acknowledged by the peer (SIOCOUTQ)."""
    raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


def unread_by_proxy(sock: socket.socket) -> int:
    """Bytes the proxy's kernel holds for it on this connection and the proxy has not
    read (rx_queue of its end in /proc/net/tcp)."""
    ours, theirs = sock.getsockname()[1], sock.getpeername()[1]
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            if (local, remote) == (theirs, ours):
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no /proc/net/tcp line for 127.0.0.1:{theirs} -> {ours}")


def push_until_stalled(sock: socket.socket, chunk: bytes) -> None:
    """Send ``chunk`` after ``chunk`` until the proxy stops reading them, and no further.

    The proxy's kernel must still have room: a FIN sent behind data the peer's window does
    not admit waits with that data (the issue: such a client cannot deliver its FIN), and
    the peers here are ones whose bytes all reached the proxy's host. So each chunk must be
    taken by the proxy's kernel before the next is sent, and we stop once bytes stay unread.
    """
    deadline = time.monotonic() + 4 * TIMEOUT
    while time.monotonic() < deadline:
        sock.sendall(chunk)
        while unsent(sock):
            assert time.monotonic() < deadline, "the proxy's kernel stopped taking bytes"
            time.sleep(0.005)
        waiting = unread_by_proxy(sock)
        if waiting:
            time.sleep(0.2)
            if unread_by_proxy(sock) >= waiting:
                return  # nothing read for 0.2 s: the proxy holds back (its buffer is full)
    raise AssertionError("the proxy kept reading")
