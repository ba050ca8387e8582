"""The handler's ``rfile``/``wfile``: blocking socket I/O bounded by deadlines.

http.server reads the request with ``rfile.readline()``; a buffered file object from
``makefile()`` would hide how much it read past the headers (the client's first frames)
and would let a slowloris client extend the request forever, one byte per timeout.
``RequestReader`` bounds the whole request by one deadline (websockify bounds only the
first byte, spec §4.1, §13.8) and hands over the bytes it read past the request.
"""

from __future__ import annotations

import socket
import time

from proxy.errors import RequestHeadTooLarge, RequestTimeout
from proxy.transport.sockio import recv_within, send_ready

_CHUNK = 64 * 1024  # bytes per recv()
#: http.server's limit on one request or header line (``http.server._MAXLINE``).
MAX_LINE = 65536  # bytes


class RequestReader:
    """A minimal readable file over a socket for ``http.server``, with a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._deadline = time.monotonic()
        self._head_left = -1  # bytes the request line and headers may still take; -1 = any
        self.closed = False

    def wait_first_byte(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the next request to start; False = close silently."""
        if self._buffer:
            return True
        self._deadline = time.monotonic() + timeout
        try:
            return self._fill()
        except RequestTimeout:
            return False

    def start_request(self, timeout: float, max_head: int = -1) -> None:
        """Bound the rest of the current request to ``timeout`` seconds from now, and its
        request line plus headers (what ``readline`` returns) to ``max_head`` bytes."""
        self._deadline = time.monotonic() + timeout
        self._head_left = max_head

    def readline(self, limit: int = -1) -> bytes:
        """Read up to and including b"\\n", at most ``limit`` bytes; b"" at EOF.

        Raises:
            RequestHeadTooLarge: the lines of this request exceed ``max_head`` in all.
        """
        line = self._readline(limit)
        if len(line) > MAX_LINE:
            return line  # http.server answers a line over its own limit (414 or 431)
        if self._head_left >= 0:
            self._head_left -= len(line)
            if self._head_left < 0:
                raise RequestHeadTooLarge("request header fields too large")
        return line

    def _readline(self, limit: int) -> bytes:
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0:
                return self._take(end + 1 if limit < 0 else min(end + 1, limit))
            if 0 <= limit <= len(self._buffer):
                return self._take(limit)
            start = len(self._buffer)
            if not self._fill():
                return self._take(len(self._buffer))

    def read(self, size: int = -1) -> bytes:
        """Read ``size`` bytes (fewer at EOF); -1 reads to EOF."""
        while size < 0 or len(self._buffer) < size:
            if not self._fill():
                break
        return self._take(len(self._buffer) if size < 0 else min(size, len(self._buffer)))

    def take_buffered(self) -> bytes:
        """Everything read past the request so far (the first WebSocket frames)."""
        return self._take(len(self._buffer))

    def close(self) -> None:
        self.closed = True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self) -> bool:
        """One recv() within the deadline; False at EOF or on a socket error."""
        try:
            data = recv_within(self._sock, _CHUNK, self._deadline)
        except TimeoutError as exc:
            raise RequestTimeout("request not received within the deadline") from exc
        except OSError:
            return False
        self._buffer += data
        return bool(data)


class SocketWriter:
    """A writable file whose writes are ``sendall`` bounded by ``timeout`` seconds."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout
        self.closed = False

    def write(self, data: bytes) -> int:
        sent = send_ready(self._sock, data)  # the 101 fits the socket buffer (issue #19)
        if sent < len(data):
            self._sock.settimeout(self._timeout)
            self._sock.sendall(memoryview(data)[sent:])
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        self.closed = True
