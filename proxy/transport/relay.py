"""The per-connection relay: one ``poll()`` loop moving bytes between client and target.

Rules: relay moves bytes; it never parses HTTP, never decides frame policy (that is
``stream.ClientStream``) and never sets socket options (``targets`` does), so it runs
unchanged over the AF_UNIX socketpairs of the unit tests.

Backpressure (STYLE.md §8.1 rule 7): each direction has a buffer with a high-water mark;
while the buffer towards one side is at the mark, the other side is not read, so a peer
that does not read stalls its sender through TCP instead of growing our memory.
websockify reads both sides unconditionally and blocks in sendall (spec §6, §13.7).
What one session holds is bounded whatever the peers send (issue #15,
docs/reliability.rst): the two buffers, one read per direction, and a compressed backlog
of at most one read (``ClientStream.receive``).

Every session can end (issue #15): a side not read because of backpressure stays
registered for POLLRDHUP (its FIN) and POLLHUP/POLLERR (a reset). ``selectors`` can
express neither an empty mask nor POLLRDHUP, hence ``select.poll`` (``sockio.Poller``),
still one loop per connection; ``relaytimers`` decides when such a session is reaped.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Protocol

from proxy.protocol.closes import (ABNORMAL, GOING_AWAY, NORMAL, SHUTTING_DOWN, TARGET_CLOSED,
                                   CloseCode, CloseInfo)
from proxy.protocol.stream import ClientStream, Output
from proxy.settings import Limits
from proxy.transport.closerequest import CloseRequest
from proxy.transport.relaytimers import CLIENT_LEFT, TARGET_LEFT, SessionTimers
from proxy.transport.sockio import (GONE, PEER_SHUT, READ, SMALL_READ, WRITE, Outbox, Poller,
                                    StopSignal, next_read_size, recv_some)

__all__ = ["CLIENT_LEFT", "TARGET_LEFT", "Limits", "Relay", "Tap"]


#: A target read at least this large but short of ``recv_size`` is followed by one more
#: non-blocking read, so that a large write split by TCP more often stays one frame.
MERGE_READS = SMALL_READ  # bytes: a read that filled the small size is merged on
#: How long a failed connection waits for the client's EOF after our FIN.
FAIL_LINGER = 1.0  # seconds
#: How long a session closed by server shutdown may wait for the client's Close (§10).
SHUTDOWN_CLOSE_TIMEOUT = 1.0  # seconds


class Tap(Protocol):
    """Watches a relay's data (``--traffic``, ``--traffic-dump``, ``--record``), in the
    relay's thread; without one the relay pays one ``is None`` test per event."""

    def from_client(self, data: bytes, messages: int) -> None:
        """One read from the client: ``data`` is what it yields for the target (may be
        empty), ``messages`` how many data messages it completed."""

    def from_target(self, data: bytes) -> None:
        """One read from the target (becomes one frame to the client)."""

    def sent_to_target(self, complete: bool) -> None:
        """A write to the target; ``complete`` when nothing is left queued for it."""

    def sent_to_client(self, complete: bool) -> None:
        """A write to the client; ``complete`` when nothing is left queued for it."""


class Relay(SessionTimers):
    """Relay one upgraded connection until it closes; ``run()`` returns how it ended.

    Both sockets are owned by the caller, who closes them after ``run()`` returns.
    """

    def __init__(
        self,
        client: socket.socket,
        target: socket.socket,
        stream: ClientStream,
        limits: Limits = Limits(),
        stop: StopSignal | None = None,
        tap: Tap | None = None,
        close_request: CloseRequest | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.stream = stream
        self.limits = limits
        self.to_client = Outbox()
        self.to_target = Outbox()
        self._client_tls = isinstance(client, ssl.SSLSocket)
        self._target_tls = isinstance(target, ssl.SSLSocket)
        self._client_fd = client.fileno()
        self._target_fd = target.fileno()
        #: Bytes taken from each side so far (for tests, stats and logs).
        self.received_from_client = 0
        self.received_from_target = 0
        self._client_read = self._target_read = next_read_size(0, limits.recv_size)
        #: Why the session was reaped (``CLIENT_LEFT``, ``TARGET_LEFT``); None otherwise.
        self.reaped: str | None = None
        self._client_lost = False  # the client socket failed: nothing more to send it
        self._target_readable = True  # no EOF or error from the target yet
        self._target_lost = False  # writing to the target failed
        self._poller = Poller()
        self._reading_client = False  # READ is in the client's mask (see _update_interest)
        self._reading_target = False
        self._close_deadline = None
        self._client_shut = False  # we half-closed the client after a protocol error
        self._start_timers(limits)  # proxy.transport.relaytimers: pings and per-session limits
        self._stop = stop
        self._tap = tap
        #: ``--admin-path``: an operator's close of this one session (issue #21).
        self._close_request = close_request

    def run(self, leftover: bytes = b"", held: bytes = b"") -> CloseInfo:
        """Relay until the session is closed on both sides or the close deadline passes.

        Args:
            leftover: bytes the client sent right after its HTTP request (already read
                by the HTTP parser); they are WebSocket frames and are fed first.
            held: bytes the target sent before the session (a parked server's banner).
        """
        self.client.setblocking(False)
        self.target.setblocking(False)
        if self._stop is not None:
            self._poller.set(self._stop, READ)
        if self._close_request is not None:
            self._poller.set(self._close_request, READ)
        if leftover:
            self._on_client_bytes(leftover)
        if held:
            self._on_target_bytes(held)
        while True:
            # Flush before blocking: bytes queued by the leftover or by the last read
            # must go out even if no socket becomes readable again.
            self._flush()
            if self._pump():
                continue  # compressed input inflated into room the flush made
            if self._finished():
                break
            self._update_interest()
            for fd, events in self._poller.wait(self._timeout()):
                self._on_events(fd, events)
            self._on_tick()
        return self.stream.close_info or CloseInfo(ABNORMAL, "", by_client=True)

    # -- reading -------------------------------------------------------------------

    def _on_events(self, fd: int, events: int) -> None:
        if fd == self._client_fd:
            if self._reading_client:
                if events & ~WRITE:
                    self._read_client()  # a reset or EOF shows in recv()
            elif not self._client_lost:
                self._on_stalled_client(events)
        elif fd == self._target_fd:
            if self._reading_target:
                if events & ~WRITE:
                    self._read_target()
            elif not self._target_lost:
                self._on_stalled_target(events)
        else:
            self._on_stop(fd)

    def _on_stalled_client(self, events: int) -> None:
        """The client, not read now (backpressure or closing), reset or sent its FIN."""
        if events & GONE:
            if self.stream.close_info is None:
                self.reaped = CLIENT_LEFT
            self._lose_client()
        elif events & PEER_SHUT and self._client_fin_at is None:
            self._client_fin_at = time.monotonic()

    def _on_stalled_target(self, events: int) -> None:
        """The target, not read now (backpressure or closing), reset or sent its FIN."""
        if events & GONE:
            if self.stream.close_info is None:
                self.reaped = TARGET_LEFT
            self._lose_target()
        elif events & PEER_SHUT and self._target_fin_at is None:
            self._target_fin_at = time.monotonic()

    def _on_stop(self, fd: int) -> None:
        """Server shutdown (1001) or an operator's close (issue #21): close and give the
        client a short time to answer."""
        request = self._close_request
        if request is not None and fd == request.fileno():
            self._poller.remove(request)
            code, reason = request.code or GOING_AWAY, request.reason
        else:
            assert self._stop is not None
            self._poller.remove(self._stop)
            code, reason = GOING_AWAY, SHUTTING_DOWN
        self.to_client.append(self.stream.close(code, reason))
        self._note_closing()
        assert self._close_deadline is not None
        self._close_deadline = min(self._close_deadline,
                                   time.monotonic() + SHUTDOWN_CLOSE_TIMEOUT)

    def _read_client(self) -> None:
        try:
            data = recv_some(self.client, self._client_read)
        except OSError:
            self._lose_client()
            return
        if data is not None:
            self._client_read = next_read_size(len(data), self.limits.recv_size)
            self._client_fin_at = None  # progress: a later stall watches for a FIN anew
            self._on_client_bytes(data)

    def _on_client_bytes(self, data: bytes) -> None:
        """Feed client bytes (b"" = EOF) through the frame policy into the buffers."""
        self.received_from_client += len(data)
        out = self.stream.receive(data or None, self._room())
        self._queue(out)
        if self._tap is not None and data:
            self._tap.from_client(out.to_target, out.messages)

    def _pump(self) -> bool:
        """Feed more of the compressed backlog if the buffer towards the target has room;
        True if some was fed (``ClientStream.receive``, issue #15)."""
        backlog = self.stream.backlog
        if not backlog:
            return False
        out = self.stream.receive(b"", self._room())
        self._queue(out)
        if self._tap is not None and (out.target_size or out.messages):
            self._tap.from_client(out.to_target, out.messages)
        return self.stream.backlog < backlog

    def _room(self) -> int:
        """Bytes the buffer towards the target may still take: the high-water mark plus
        one read, as for plain data; all of it while closing (data is dropped then)."""
        bound = self.limits.high_water + self.limits.recv_size
        if self.stream.close_info is not None:
            return bound
        return max(0, bound - len(self.to_target))

    def _queue(self, out: Output) -> None:
        if self.limits.idle_timeout and out.target_chunks:
            self._last_activity = time.monotonic()
        self.to_target.extend(out.target_chunks)
        self.to_client.extend(out.client_chunks)
        self._note_closing()

    def _read_target(self) -> None:
        try:
            data = recv_some(self.target, self._target_read)
        except OSError:
            self._lose_target()
            return
        if data is None:
            return
        self._target_read = next_read_size(len(data), self.limits.recv_size)
        self._target_fin_at = None
        if MERGE_READS <= len(data) < self.limits.recv_size:
            data += self._read_more(self.limits.recv_size - len(data))
        if data:
            self._on_target_bytes(data)
            return
        self._end_target()

    def _on_target_bytes(self, data: bytes) -> None:
        self.received_from_target += len(data)
        if self.limits.idle_timeout:
            self._last_activity = time.monotonic()
        self.to_client.extend(self.stream.frame_data(data))
        if self._tap is not None:
            self._tap.from_target(data)

    def _read_more(self, size: int) -> bytes:
        """What else the target sent since a large read that stopped short of ``size``.

        One more non-blocking read: a target write of 64 KiB is often split into two
        loopback segments (MSS 65483), and one frame per read would split the message
        too. EOF and errors are left to the next poll(), which reports them again.
        """
        try:
            return recv_some(self.target, size) or b""
        except OSError:
            return b""

    def _end_target(self) -> None:
        """Target EOF or failure: what it sent is already queued; the Close goes after it."""
        if self._target_readable:
            self._target_readable = False
            self.to_client.append(self.stream.close(NORMAL, TARGET_CLOSED))  # spec §5.3
            self._note_closing()

    # -- writing -------------------------------------------------------------------

    def _flush(self) -> None:
        if self.to_client and not self._client_lost:
            try:
                sent = self.to_client.send(self.client, self._client_tls)
            except OSError:
                self._lose_client()
            else:
                self._client_stuck_since = self._stuck_since(
                    self._client_stuck_since, sent, self.to_client)
                if self._tap is not None:
                    self._tap.sent_to_client(not self.to_client)
        if self.to_target and not self._target_lost:
            try:
                sent = self.to_target.send(self.target, self._target_tls)
            except OSError:
                self._lose_target()
            else:
                self._target_stuck_since = self._stuck_since(
                    self._target_stuck_since, sent, self.to_target)
                if self._tap is not None:
                    self._tap.sent_to_target(not self.to_target)

    def _lose_target(self) -> None:
        """The target socket failed (reset): drop what it was owed and end the session."""
        self._drop_target()
        self._end_target()

    def _drop_target(self) -> None:
        """Write nothing more to the target, and stop watching it."""
        self._target_lost = True
        self.to_target.clear()
        self._poller.remove(self.target)
        self._reading_target = False

    def _lose_client(self) -> None:
        """The client socket failed (reset, broken pipe): end the session as 1006."""
        self._client_lost = True
        self.to_client.clear()
        self._poller.remove(self.client)
        self._reading_client = False
        self.stream.drop_backlog()
        self.stream.receive(None)
        self._note_closing()

    # -- bookkeeping ---------------------------------------------------------------

    def _note_closing(self) -> None:
        """Arm the close deadline the first time the session starts closing."""
        if self._close_deadline is None and self.stream.close_info is not None:
            self._close_deadline = time.monotonic() + self.limits.close_timeout

    def _finished(self) -> bool:
        if self.stream.close_info is None:
            return False
        if self._close_deadline is not None and time.monotonic() >= self._close_deadline:
            self._note_undelivered()
            return True  # a peer that never reads or never answers cannot hold us
        if self.stream.failed and not self.to_client and not self._client_shut:
            self._fail_connection()
        client_done = self.stream.finished or self._client_lost
        target_done = not self.to_target or self._target_lost
        return client_done and not self.to_client and target_done

    def _fail_connection(self) -> None:
        """After a protocol error our Close is out: half-close and wait for the client's EOF.

        RFC 6455 §7.1.7 lets us drop the TCP connection; a FIN instead of close() keeps
        unread client bytes from turning it into a reset that could destroy the Close
        frame. The parser is dead, so the client's own Close can no longer be seen.
        """
        self._client_shut = True
        try:
            self.client.shutdown(socket.SHUT_WR)
        except OSError:
            self._lose_client()
            return
        assert self._close_deadline is not None
        self._close_deadline = min(self._close_deadline, time.monotonic() + FAIL_LINGER)

    def _update_interest(self) -> None:
        """Each side's poll mask. A side we do not read stays registered (issue #15): with
        POLLRDHUP until its FIN was seen, and for resets whatever the mask."""
        hw = self.limits.high_water
        closing = self.stream.close_info is not None
        if not self._client_lost:
            # While closing, keep reading only to see the client's Close (data is dropped).
            # Pongs land in to_client too, hence its own (looser) bound.
            read = not self.stream.finished and (closing or (
                len(self.to_target) < hw and len(self.to_client) < 2 * hw
                and not self.stream.backlog))
            self._reading_client = read
            mask = READ if read else (PEER_SHUT if self._client_fin_at is None else 0)
            if self.to_client:
                mask |= WRITE
            self._poller.set(self.client, mask)
        if not self._target_lost:
            read = self._target_readable and not closing and len(self.to_client) < hw
            self._reading_target = read
            watch = self._target_readable and not closing and self._target_fin_at is None
            mask = READ if read else (PEER_SHUT if watch else 0)
            if self.to_target:
                mask |= WRITE
            self._poller.set(self.target, mask)

    def _close_by_us(self, code: CloseCode, reason: str) -> None:
        self.to_client.append(self.stream.close(code, reason))
        self._note_closing()
