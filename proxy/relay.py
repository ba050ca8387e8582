"""The per-connection relay: one ``selectors`` loop moving bytes between client and target.

Rules: relay moves bytes; it never parses HTTP, never decides frame policy (that is
``frames.ClientStream``) and never sets socket options (``targets`` does), so it runs
unchanged over the AF_UNIX socketpairs of the unit tests.

Backpressure (STYLE.md §8.1 rule 7): each direction has a buffer with a high-water mark;
while the buffer towards one side is at the mark, the other side is not read, so a peer
that does not read stalls its sender through TCP instead of growing our memory.
websockify reads both sides unconditionally and blocks in sendall (spec §6, §13.7).
"""

from __future__ import annotations

import selectors
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Protocol

from proxy.frames import (ABNORMAL, GOING_AWAY, HEARTBEAT_TIMEOUT, IDLE_TIMEOUT, INTERNAL_ERROR,
                          NORMAL, SESSION_TIME_LIMIT, SHUTTING_DOWN, TARGET_CLOSED, ClientStream,
                          CloseInfo)
from proxy.settings import CLOSE_TIMEOUT, HIGH_WATER, RECV_SIZE
from proxy.sockio import Outbox, StopSignal, recv_some

_R = selectors.EVENT_READ
_W = selectors.EVENT_WRITE


@dataclass(frozen=True)
class Limits:
    """Bounds of one relay; see ``proxy.settings`` for the defaults and their reasons."""

    high_water: int = HIGH_WATER  # bytes per direction
    recv_size: int = RECV_SIZE  # bytes per recv()
    heartbeat: float = 0.0  # seconds between pings; 0 = off
    close_timeout: float = CLOSE_TIMEOUT  # seconds to flush and exchange Close frames
    idle_timeout: float = 0.0  # seconds without data either way before close 1000; 0 = off
    session_time: float = 0.0  # seconds after the start before close 1001; 0 = off
    heartbeat_timeout: float = 0.0  # seconds a ping may stay unanswered (1011); 0 = off

    @property
    def ping_interval(self) -> float:
        """``heartbeat``, or half the heartbeat timeout when only that is set; 0 = no pings."""
        if self.heartbeat > 0:
            return self.heartbeat
        return self.heartbeat_timeout / 2


#: A target read at least this large but short of ``recv_size`` is followed by one more
#: non-blocking read, so that a large write split by TCP more often stays one frame.
MERGE_READS = 16 * 1024  # bytes
#: How long a failed connection waits for the client's EOF after our FIN.
FAIL_LINGER = 1.0  # seconds
#: How long a session closed by server shutdown may wait for the client's Close (§10).
SHUTDOWN_CLOSE_TIMEOUT = 1.0  # seconds


class Tap(Protocol):
    """Watches a relay's data (``--traffic``, ``--traffic-dump``, ``--record``).

    Called in the relay's thread, only when one is configured: without a tap the relay
    pays one ``is None`` test per event (issue #4: debugging costs nothing when off).
    """

    def from_client(self, data: bytes, messages: int) -> None:
        """One read from the client: ``data`` is what it yields for the target (may be
        empty), ``messages`` how many data messages it completed."""

    def from_target(self, data: bytes) -> None:
        """One read from the target (becomes one frame to the client)."""

    def sent_to_target(self, complete: bool) -> None:
        """A write to the target; ``complete`` when nothing is left queued for it."""

    def sent_to_client(self, complete: bool) -> None:
        """A write to the client; ``complete`` when nothing is left queued for it."""


class Relay:
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
    ) -> None:
        self.client = client
        self.target = target
        self.stream = stream
        self.limits = limits
        self.to_client = Outbox()
        self.to_target = Outbox()
        self._client_tls = isinstance(client, ssl.SSLSocket)
        self._target_tls = isinstance(target, ssl.SSLSocket)
        #: Bytes taken from each side so far (for tests, stats and logs).
        self.received_from_client = 0
        self.received_from_target = 0
        self._client_lost = False  # the client socket failed: nothing more to send it
        self._target_readable = True  # no EOF or error from the target yet
        self._target_lost = False  # writing to the target failed
        self._selector = selectors.PollSelector()
        self._interest: dict[socket.socket, int] = {}
        self._close_deadline: float | None = None
        self._client_shut = False  # we half-closed the client after a protocol error
        now = time.monotonic()
        interval = limits.ping_interval
        self._next_ping = now + interval if interval > 0 else None
        # Per-session timers (no thread: they only shorten the poll() timeout).
        self._last_activity = now  # last data either way (--conn-idle-timeout)
        self._session_end = now + limits.session_time if limits.session_time > 0 else None
        self._unanswered_since: float | None = None  # first ping not followed by a pong
        self._pongs_seen = 0
        self._stop = stop
        self._tap = tap

    def run(self, leftover: bytes = b"") -> CloseInfo:
        """Relay until the session is closed on both sides or the close deadline passes.

        Args:
            leftover: bytes the client sent right after its HTTP request (already read
                by the HTTP parser); they are WebSocket frames and are fed first.
        """
        self.client.setblocking(False)
        self.target.setblocking(False)
        if self._stop is not None:
            self._selector.register(self._stop, _R)
        try:
            if leftover:
                self._on_client_bytes(leftover)
            while True:
                # Flush before blocking: bytes queued by the leftover or by the last read
                # must go out even if no socket becomes readable again.
                self._flush()
                if self._finished():
                    break
                self._update_interest()
                for key, _mask in self._selector.select(self._timeout()):
                    self._on_readable(key.fileobj)  # type: ignore[arg-type]
                self._on_tick()
        finally:
            self._selector.close()
        return self.stream.close_info or CloseInfo(ABNORMAL, "", by_client=True)

    # -- reading -------------------------------------------------------------------

    def _on_readable(self, sock: socket.socket | StopSignal) -> None:
        if sock is self.client:
            self._read_client()
        elif sock is self.target:
            self._read_target()
        else:
            self._on_stop()

    def _on_stop(self) -> None:
        """Server shutdown: close 1001 and give the client a short time to answer."""
        assert self._stop is not None
        self._selector.unregister(self._stop)
        self.to_client.append(self.stream.close(GOING_AWAY, SHUTTING_DOWN))
        self._note_closing()
        assert self._close_deadline is not None
        self._close_deadline = min(self._close_deadline,
                                   time.monotonic() + SHUTDOWN_CLOSE_TIMEOUT)

    def _read_client(self) -> None:
        try:
            data = recv_some(self.client, self.limits.recv_size)
        except OSError:
            self._lose_client()
            return
        if data is not None:
            self._on_client_bytes(data)

    def _on_client_bytes(self, data: bytes) -> None:
        """Feed client bytes (b"" = EOF) through the frame policy into the buffers."""
        self.received_from_client += len(data)
        out = self.stream.receive(data or None)
        if self.limits.idle_timeout and out.target_chunks:
            self._last_activity = time.monotonic()
        self.to_target.extend(out.target_chunks)
        self.to_client.extend(out.client_chunks)
        if self._tap is not None and data:
            self._tap.from_client(out.to_target, out.messages)
        self._note_closing()

    def _read_target(self) -> None:
        try:
            data = recv_some(self.target, self.limits.recv_size)
        except OSError:
            self._lose_target()
            return
        if data is None:
            return
        if MERGE_READS <= len(data) < self.limits.recv_size:
            data += self._read_more(self.limits.recv_size - len(data))
        if data:
            self.received_from_target += len(data)
            if self.limits.idle_timeout:
                self._last_activity = time.monotonic()
            self.to_client.extend(self.stream.frame_data(data))
            if self._tap is not None:
                self._tap.from_target(data)
            return
        self._end_target()

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
                self.to_client.send(self.client, self._client_tls)
            except OSError:
                self._lose_client()
            else:
                if self._tap is not None:
                    self._tap.sent_to_client(not self.to_client)
        if self.to_target and not self._target_lost:
            try:
                self.to_target.send(self.target, self._target_tls)
            except OSError:
                self._lose_target()
            else:
                if self._tap is not None:
                    self._tap.sent_to_target(not self.to_target)

    def _lose_target(self) -> None:
        """The target socket failed (reset): drop what it was owed and end the session."""
        self._target_lost = True
        self.to_target.clear()
        self._end_target()

    def _lose_client(self) -> None:
        """The client socket failed (reset, broken pipe): end the session as 1006."""
        self._client_lost = True
        self.to_client.clear()
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
        hw = self.limits.high_water
        closing = self.stream.close_info is not None
        client = 0
        if not self._client_lost and not self.stream.finished:
            # While closing, keep reading only to see the client's Close (data is dropped).
            # Pongs land in to_client too, hence its own (looser) bound.
            if closing or (len(self.to_target) < hw and len(self.to_client) < 2 * hw):
                client |= _R
            if self.to_client:
                client |= _W
        target = 0
        if self._target_readable and not closing and len(self.to_client) < hw:
            target |= _R
        if self.to_target and not self._target_lost:
            target |= _W
        self._set_interest(self.client, client)
        self._set_interest(self.target, target)

    def _set_interest(self, sock: socket.socket, events: int) -> None:
        current = self._interest.get(sock, 0)
        if events == current:
            return
        # poll() cannot wait on an empty mask (and EVENT_WRITE as a placeholder spins).
        if not events:
            self._selector.unregister(sock)
        elif not current:
            self._selector.register(sock, events)
        else:
            self._selector.modify(sock, events)
        self._interest[sock] = events

    def _timeout(self) -> float | None:
        """Seconds until the next timer (ping, limits, close deadline); None = wait for I/O."""
        wakeups = [t for t in self._timers() if t is not None]
        if not wakeups:
            return None
        return max(0.0, min(wakeups) - time.monotonic())

    def _timers(self) -> tuple[float | None, ...]:
        if self.stream.close_info is not None:
            return (self._close_deadline,)
        limits = self.limits
        idle = self._last_activity + limits.idle_timeout if limits.idle_timeout else None
        pong = (self._unanswered_since + limits.heartbeat_timeout
                if self._unanswered_since is not None else None)
        return self._next_ping, idle, self._session_end, pong

    def _on_tick(self) -> None:
        """Pings and the per-session limits, checked after every wake-up."""
        if self.stream.close_info is not None:
            return
        now = time.monotonic()
        limits = self.limits
        if self._session_end is not None and now >= self._session_end:
            self._close_by_us(GOING_AWAY, SESSION_TIME_LIMIT)
        elif limits.idle_timeout and now >= self._last_activity + limits.idle_timeout:
            self._close_by_us(NORMAL, IDLE_TIMEOUT)
        elif self._pong_overdue(now):
            self._close_by_us(INTERNAL_ERROR, HEARTBEAT_TIMEOUT)
        elif self._next_ping is not None and now >= self._next_ping:
            self.to_client.append(self.stream.ping())
            if self._unanswered_since is None:
                self._unanswered_since = now
            self._next_ping = now + limits.ping_interval

    def _pong_overdue(self, now: float) -> bool:
        """``--heartbeat-timeout``: any pong answers every ping sent before it."""
        if not self.limits.heartbeat_timeout:
            return False
        if self.stream.pongs != self._pongs_seen:
            self._pongs_seen = self.stream.pongs
            self._unanswered_since = None
        since = self._unanswered_since
        return since is not None and now >= since + self.limits.heartbeat_timeout

    def _close_by_us(self, code: int, reason: str) -> None:
        self.to_client.append(self.stream.close(code, reason))
        self._note_closing()


def close_session(
    client: socket.socket, stream: ClientStream, code: int, reason: str, limits: Limits
) -> None:
    """Close a session that has no target (connect failed) and wait for the client's Close.

    websockify closes TCP right after its Close frame (spec §5.3); waiting for the reply,
    bounded by ``limits.close_timeout``, keeps unread client bytes from turning our close
    into a reset that could destroy the Close frame before the client reads it.
    """
    data = stream.close(code, reason)
    deadline = time.monotonic() + limits.close_timeout
    try:
        client.settimeout(limits.close_timeout)
        client.sendall(data)
        while not stream.finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            client.settimeout(remaining)
            stream.receive(client.recv(limits.recv_size) or None)
    except OSError:
        return
