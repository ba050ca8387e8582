"""TCP backends ("targets") for the proxy under test.

Each backend listens on ("127.0.0.1", 0), accepts in a thread and handles every connection in
its own thread. Use them as context managers: ``__enter__`` waits for the ready Event, and
``__exit__`` shuts down every accepted socket (which wakes blocked ``recv``/``sendall``) and
joins all threads with a timeout.

Every accepted connection gets a :class:`ConnRecord`, which the tests poll (with deadlines) for
received bytes and for EOF.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import TypeVar

from tests.conftest import TIMEOUT

_POLL = 0.05

B = TypeVar("B", bound="TCPBackend")


class ConnRecord:
    """What one backend connection has seen: the bytes received and whether EOF arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._cond = threading.Condition()
        self._data = bytearray()
        self._count = 0
        self.eof = threading.Event()
        self.closed = threading.Event()
        self.keep_data = True

    def add(self, chunk: bytes) -> None:
        with self._cond:
            self._count += len(chunk)
            if self.keep_data:
                self._data += chunk
            self._cond.notify_all()

    def mark_eof(self) -> None:
        with self._cond:
            self.eof.set()
            self._cond.notify_all()

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    @property
    def data(self) -> bytes:
        with self._cond:
            return bytes(self._data)

    def wait_count(self, n: int, timeout: float = TIMEOUT) -> bool:
        """Wait until at least ``n`` bytes were received; False on timeout or early EOF."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._count < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.eof.is_set():
                    return False
                self._cond.wait(min(remaining, _POLL))
            return True

    def wait_bytes(self, n: int, timeout: float = TIMEOUT) -> bytes:
        """Return the first ``n`` bytes received, or fail the test with what did arrive."""
        ok = self.wait_count(n, timeout)
        data = self.data
        assert ok, f"backend got {len(data)} of {n} bytes (eof={self.eof.is_set()}): {data[:80]!r}"
        return data[:n]

    def wait_eof(self, timeout: float = TIMEOUT) -> bool:
        return self.eof.wait(timeout)


class TCPBackend:
    """Base class: accept loop plus one handler thread per connection. Override ``handle``."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.connections: list[ConnRecord] = []
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{type(self).__name__}-accept", daemon=True
        )
        self.errors: list[BaseException] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self: B) -> B:
        self._accept_thread.start()
        assert self.ready.wait(TIMEOUT), "backend accept thread did not start"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self._accept_thread.join(TIMEOUT)
        with self._lock:
            records = list(self.connections)
            threads = list(self._threads)
        for rec in records:
            try:
                rec.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(TIMEOUT)
        for rec in records:
            rec.sock.close()
        self._listener.close()
        alive = [t.name for t in threads + [self._accept_thread] if t.is_alive()]
        assert not alive, f"backend threads did not stop: {alive}"

    def _accept_loop(self) -> None:
        self.ready.set()
        n = 0
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.settimeout(4 * TIMEOUT)
            rec = ConnRecord(sock)
            n += 1
            thread = threading.Thread(
                target=self._run_handler, args=(rec,), name=f"{type(self).__name__}-{n}",
                daemon=True,
            )
            with self._cond:
                self.connections.append(rec)
                self._threads.append(thread)
                self._cond.notify_all()
            thread.start()

    def _run_handler(self, rec: ConnRecord) -> None:
        try:
            self.handle(rec)
        except OSError:
            # shutdown() from stop(), a reset from the proxy, or a timeout: the test decides.
            pass
        except BaseException as exc:  # pragma: no cover - surfaced through self.errors
            self.errors.append(exc)
        finally:
            rec.closed.set()

    def handle(self, rec: ConnRecord) -> None:
        raise NotImplementedError

    # -- helpers for tests -------------------------------------------------------------------

    def wait_connections(self, n: int = 1, timeout: float = TIMEOUT) -> list[ConnRecord]:
        """Wait until ``n`` connections were accepted and return the records."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.connections) < n:
                remaining = deadline - time.monotonic()
                assert remaining > 0, (
                    f"backend accepted {len(self.connections)} of {n} expected connections"
                )
                self._cond.wait(min(remaining, _POLL))
            return list(self.connections)

    def connection(self, timeout: float = TIMEOUT) -> ConnRecord:
        """The first accepted connection (waits for it)."""
        return self.wait_connections(1, timeout)[0]

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self.connections)

    def _read_recorded(self, rec: ConnRecord) -> bytes | None:
        """One read, recorded on ``rec``; None at EOF (marked) or when the backend stops."""
        chunk = self._recv_until_stopped(rec)
        if not chunk:
            if chunk is not None:
                rec.mark_eof()
            return None
        rec.add(chunk)
        return chunk

    def _recv_until_stopped(self, rec: ConnRecord, size: int = 65536) -> bytes | None:
        """One ``recv``; None when the backend is stopping."""
        while not self.stopping.is_set():
            try:
                return rec.sock.recv(size)
            except TimeoutError:
                continue
        return None


class EchoBackend(TCPBackend):
    """Sends back every byte it receives; on EOF it records it and closes."""

    def handle(self, rec: ConnRecord) -> None:
        while (chunk := self._read_recorded(rec)) is not None:
            rec.sock.sendall(chunk)


class SinkBackend(TCPBackend):
    """Reads and counts (and by default keeps) everything; never writes.

    ``stop_reading()`` / ``start_reading()`` switch reading for all connections, which lets a
    test fill the proxy's buffers and then drain them.
    """

    def __init__(self, *, reading: bool = True, keep_data: bool = True) -> None:
        super().__init__()
        self.reading = threading.Event()
        if reading:
            self.reading.set()
        self.keep_data = keep_data

    def start_reading(self) -> None:
        self.reading.set()

    def stop_reading(self) -> None:
        self.reading.clear()

    def handle(self, rec: ConnRecord) -> None:
        rec.keep_data = self.keep_data
        while not self.stopping.is_set():
            if not self.reading.wait(_POLL):
                continue
            if self._read_recorded(rec) is None:
                return


class NeverReadBackend(SinkBackend):
    """Accepts connections and holds them open without ever reading."""

    def __init__(self) -> None:
        super().__init__(reading=False)


class ScriptedBackend(TCPBackend):
    """Sends ``script`` on every connection, then closes it (the proxy sees EOF).

    If ``close_when`` is given, the close waits for that Event (set by the test), so the test
    can hold the connection open after the script was sent.
    """

    def __init__(self, script: bytes, close_when: threading.Event | None = None) -> None:
        super().__init__()
        self.script = script
        self.close_when = close_when

    def handle(self, rec: ConnRecord) -> None:
        rec.sock.sendall(self.script)
        if self.close_when is not None:
            while not self.close_when.wait(_POLL):
                if self.stopping.is_set():
                    return
        rec.sock.shutdown(socket.SHUT_WR)
        # Drain until the proxy closes too, so closing never turns into a reset that could
        # discard the scripted bytes before the proxy read them.
        while self._read_recorded(rec) is not None:
            pass
