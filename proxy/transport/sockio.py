"""Non-blocking socket pieces of the relay: one read, the write queue, the stop signal.

I/O layer, no policy: ``relay`` decides when to read and write; these helpers only know
how (TLS sockets included, spec §7.2; notes §4.4).
"""

from __future__ import annotations

import math
import select
import socket
import ssl
import threading
import time
from collections import deque
from itertools import islice
from typing import Iterable, Protocol

#: Exceptions meaning "try again when the selector says so", not a failure.
WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


#: ``poll()`` event bits. POLLRDHUP (Linux) reports the peer's FIN without reading the
#: data queued before it; elsewhere 0, and only a reset (POLLHUP/POLLERR) is seen.
READ = select.POLLIN
WRITE = select.POLLOUT
PEER_SHUT = getattr(select, "POLLRDHUP", 0)
#: Always reported by poll(), whatever the mask.
GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


class HasFileno(Protocol):
    def fileno(self) -> int: ...


class Poller:
    """``select.poll`` with the current mask of each registered file.

    Unlike ``selectors``, a registered socket may have an empty mask: poll() then still
    reports POLLHUP/POLLERR for it, which is how a relay notices a peer that resets while
    its direction is stalled (issue #15); an unregistered socket would go unnoticed.
    """

    def __init__(self) -> None:
        self._poll = select.poll()
        self._masks: dict[int, int] = {}

    def set(self, obj: HasFileno, mask: int) -> None:
        """Register ``obj`` with ``mask`` (0 = errors and hang-ups only), or update it."""
        fd = obj.fileno()
        current = self._masks.get(fd)
        if current == mask:
            return
        if current is None:
            self._poll.register(fd, mask)
        else:
            self._poll.modify(fd, mask)
        self._masks[fd] = mask

    def remove(self, obj: HasFileno) -> None:
        fd = obj.fileno()
        if self._masks.pop(fd, None) is not None:
            self._poll.unregister(fd)

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        """(fd, events) pairs ready within ``timeout`` seconds (None = no limit)."""
        # Round up: a 0.4 ms timeout rounded down to 0 would spin until the timer is due.
        ms = None if timeout is None else math.ceil(timeout * 1000)
        return self._poll.poll(ms)


class StopSignal:
    """Tells every relay at once that the server is shutting down.

    One socketpair shared by all connections (2 fds in all, not 2 per connection): the
    byte written by ``set()`` is never read, so the read end stays readable and wakes
    every relay's poll() until each one unregisters it.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._event = threading.Event()

    def fileno(self) -> int:
        return self._reader.fileno()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        if not self._event.is_set():
            self._event.set()
            try:
                self._writer.send(b"!")
            except OSError:
                pass

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


def shut_and_close(sock: socket.socket) -> None:
    """Shut down, then close: shutdown() is what wakes a thread blocked in recv()."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def recv_ready(sock: socket.socket, size: int, flags: int = 0) -> bytes | None:
    """One recv() that does not wait, on a blocking plain socket; None when nothing is
    there yet or the socket is in timeout mode (or TLS), so the caller waits as before.

    Issue #19: a recv() in timeout mode is a poll() and then the recv(), each releasing
    the GIL (a thread hand-off under load), and settimeout() is one more syscall; the
    request is usually there already when the handler starts. OSError propagates.
    """
    if sock.gettimeout() is not None or isinstance(sock, ssl.SSLSocket):
        return None
    try:
        return sock.recv(size, flags | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None


def recv_within(sock: socket.socket, size: int, deadline: float) -> bytes:
    """One recv() of up to ``size`` bytes that returns by ``deadline`` (a
    ``time.monotonic()`` value); b"" at EOF. Without a wait when the bytes are there
    (``recv_ready``), else in timeout mode for the time left.

    Raises:
        TimeoutError: the deadline passed, before the call or while it waited.
        OSError: the socket failed.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    data = recv_ready(sock, size)
    if data is None:
        sock.settimeout(left)
        data = sock.recv(size)
    return data


def send_ready(sock: socket.socket, data: bytes) -> int:
    """What one send() that does not wait wrote of ``data`` (see ``recv_ready``); 0 when
    the socket is in timeout mode or TLS. OSError propagates."""
    if sock.gettimeout() is not None or isinstance(sock, ssl.SSLSocket):
        return 0
    try:
        return sock.send(data, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return 0


#: The read size of a socket whose last read was small (issue #19): a recv() of 256 KiB
#: allocates a bytes object that glibc maps and unmaps (mmap, mremap, munmap: three
#: syscalls and a TLB flush per read, with the GIL held), one of 16 KiB comes from the heap.
SMALL_READ = 16 * 1024  # bytes


def next_read_size(last: int, full: int) -> int:
    """The next recv() size after a read of ``last`` bytes: ``full`` while reads fill
    at least ``SMALL_READ`` (a stream), else ``SMALL_READ`` (a session of small messages)."""
    return full if last >= SMALL_READ else min(SMALL_READ, full)


def recv_some(sock: socket.socket, size: int) -> bytes | None:
    """One read; b"" at EOF, None when nothing is there yet. OSError propagates."""
    try:
        data = sock.recv(size)
        # TLS: decrypted bytes can wait in the SSL object without the fd being readable.
        while data and isinstance(sock, ssl.SSLSocket) and sock.pending():
            data += sock.recv(size)
    except WOULD_BLOCK:
        return None
    return data


#: Chunks handed to one sendmsg() (Linux IOV_MAX is 1024).
_IOV_CHUNKS = 256
#: TLS has no sendmsg(): up to this many chunks are joined into one send() instead.
_TLS_JOIN_CHUNKS = 16


class Outbox:
    """Bytes owed to one socket: a queue of chunks and their total size.

    Chunks are queued as they come (frame headers, payloads) and written with one
    ``sendmsg()``, so a payload is never copied into a buffer and a partial write never
    shifts the rest (``del bytearray[:n]`` is a memmove of everything behind it).
    ``len()`` is the byte count the high-water marks compare against.
    """

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: deque[bytes | bytearray | memoryview] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, chunk: bytes | bytearray) -> None:
        if chunk:
            self._chunks.append(chunk)
            self._size += len(chunk)

    def extend(self, chunks: Iterable[bytes | bytearray]) -> None:
        for chunk in chunks:
            if chunk:
                self._chunks.append(chunk)
                self._size += len(chunk)

    def clear(self) -> None:
        self._chunks.clear()
        self._size = 0

    def send(self, sock: socket.socket, tls: bool) -> int:
        """Write what the socket takes now, drop it from the queue and return its size
        (0 when the socket takes nothing now). OSError propagates."""
        chunks = self._chunks
        try:
            if len(chunks) == 1:
                sent = sock.send(chunks[0])
            elif tls:
                sent = sock.send(b"".join(islice(chunks, _TLS_JOIN_CHUNKS)))
            else:
                sent = sock.sendmsg(islice(chunks, _IOV_CHUNKS))
        except WOULD_BLOCK:
            return 0
        self._size -= sent
        taken = sent
        while sent:
            first = chunks[0]
            if sent >= len(first):
                chunks.popleft()
                sent -= len(first)
            else:
                chunks[0] = memoryview(first)[sent:]
                break
        return taken
