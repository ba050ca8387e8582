#!/usr/bin/env python3
"""Benchmark target server in one Python process on epoll: backend.mjs's protocol (issue #19).

The Node backend answers in ~10 µs; a typical VNC server or a Python backend does not, and
issue #19 measured the proxies' echo round trip differently against this one. The client's
first 9 bytes choose what the connection does (a mode byte and a u64 BE):
  'S' sink:   count the bytes that follow; acknowledge with the u64 BE running total,
              at most one ack per ACK_SECS and always a trailing one once data stops.
  'R' source: write the u64 count of bytes (64 KiB writes, honouring backpressure).
  'E' echo:   echo every byte that follows.
Usage: backend.py PORT   (prints "ready PORT" once listening). Stdlib only, Linux only.
"""

from __future__ import annotations

import select
import signal
import socket
import struct
import sys
import time

ACK_SECS = 0.002
CHUNK = b"\x5a" * 65536
READ = 65536
IN, OUT = select.EPOLLIN | select.EPOLLRDHUP, select.EPOLLOUT


class Conn:
    __slots__ = ("sock", "mask", "mode", "head", "count", "left", "pending", "ack_at")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.mask = IN  # the events epoll has for it
        self.mode = b""
        self.head = b""
        self.count = 0  # sink: bytes received
        self.left = 0  # source: bytes still to send
        self.pending = b""  # echo/source: bytes the kernel did not take yet
        self.ack_at = 0.0  # sink: when the next ack is due (0: none due)


class Backend:
    def __init__(self, port: int) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.ep = select.epoll()
        self.ep.register(self.listener.fileno(), select.EPOLLIN)
        self.conns: dict[int, Conn] = {}
        self.acks: set[Conn] = set()  # sinks with an ack due

    def run(self) -> None:
        print(f"ready {self.listener.getsockname()[1]}", flush=True)
        while True:
            timeout = ACK_SECS if self.acks else -1
            for fd, ev in self.ep.poll(timeout):
                if fd == self.listener.fileno():
                    self.accept()
                    continue
                c = self.conns.get(fd)
                if c is None:
                    continue
                if ev & select.EPOLLOUT:
                    self.write(c, b"")
                if ev & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                    self.read(c)
            if self.acks:
                self.send_acks()

    def accept(self) -> None:
        for _ in range(64):
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # out of fds: the next poll retries
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns[sock.fileno()] = Conn(sock)
            self.ep.register(sock.fileno(), IN)

    def close(self, c: Conn) -> None:
        self.acks.discard(c)
        fd = c.sock.fileno()
        if self.conns.pop(fd, None) is not None:
            self.ep.unregister(fd)
        c.sock.close()

    def read(self, c: Conn) -> None:
        try:
            data = c.sock.recv(READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(c)
            return
        if not c.mode:
            c.head += data
            if len(c.head) < 9:
                return
            c.mode, (param,), data = c.head[:1], struct.unpack(">Q", c.head[1:9]), c.head[9:]
            c.head = b""
            if c.mode == b"R":
                c.left = param
                self.write(c, b"")
                return
            if c.mode not in (b"S", b"E"):
                self.close(c)
                return
        if c.mode == b"E":
            self.write(c, data)
        elif c.mode == b"S" and data:
            c.count += len(data)
            if not c.ack_at:
                c.ack_at = time.monotonic() + ACK_SECS
                self.acks.add(c)

    def write(self, c: Conn, data: bytes) -> None:
        """Send what is pending plus ``data``; for a source, top up with CHUNKs."""
        buf = c.pending + data if c.pending else data
        while True:
            if not buf and c.left:
                n = min(c.left, len(CHUNK))
                c.left -= n
                buf = CHUNK if n == len(CHUNK) else CHUNK[:n]
            if not buf:
                break
            try:
                sent = c.sock.send(buf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close(c)
                return
            buf = buf[sent:]
            if buf:
                break
        c.pending = buf
        want = IN | OUT if (buf or c.left) else IN
        if want != c.mask:  # no epoll_ctl per echoed message
            c.mask = want
            self.ep.modify(c.sock.fileno(), want)

    def send_acks(self) -> None:
        now = time.monotonic()
        for c in [c for c in self.acks if c.ack_at <= now]:
            self.acks.discard(c)
            c.ack_at = 0.0
            self.write(c, struct.pack(">Q", c.count))


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Backend(int(sys.argv[1])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
