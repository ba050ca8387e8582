"""The clocks of one relay: pings and the per-session limits, none with a thread.

``SessionTimers`` is the half of ``relay.Relay`` that decides *when*: each limit is a
deadline folded into the ``poll()`` timeout, checked after every wake-up. What it may do
when one passes (close frames, dropping a side) are the relay's own methods.

- ``--heartbeat`` / ``--heartbeat-timeout``: pings, and a close 1011 when none is answered.
- ``--conn-idle-timeout`` (1000), ``--max-session-time`` (1001).
- ``--stall-timeout`` (issue #15): a peer that takes no byte of what it is owed for that
  long ends the session; the relay records when a queue last moved (``*_stuck_since``).
- Reaping (issue #15): a side that sent its FIN while not read (backpressure) gets the
  close timeout for the other side to drain, then the session ends.
"""

from __future__ import annotations

import time

from proxy.protocol.closes import (CLIENT_STALLED, GOING_AWAY, HEARTBEAT_TIMEOUT, IDLE_TIMEOUT,
                                   INTERNAL_ERROR, LIMIT_REASONS, NORMAL, SESSION_TIME_LIMIT,
                                   TARGET_STALLED, CloseCode)
from proxy.protocol.stream import ClientStream
from proxy.settings import Limits
from proxy.transport.sockio import Outbox

#: Why a session was reaped (issue #15); the handler logs it.
CLIENT_LEFT = "client left while the target was not reading"
TARGET_LEFT = "target left while the client was not reading"
UNDELIVERED = "close timeout with %d bytes not taken by the %s"


class SessionTimers:
    """Timer state and checks, mixed into ``relay.Relay`` (which provides the rest)."""

    stream: ClientStream
    limits: Limits
    to_client: Outbox
    to_target: Outbox
    reaped: str | None
    _close_deadline: float | None
    _client_lost: bool
    _target_lost: bool

    def _start_timers(self, limits: Limits) -> None:
        now = time.monotonic()
        interval = limits.ping_interval
        self._next_ping = now + interval if interval > 0 else None
        self._last_activity = now  # last data either way (--conn-idle-timeout)
        self._session_end = now + limits.session_time if limits.session_time > 0 else None
        self._unanswered_since: float | None = None  # first ping not followed by a pong
        self._pongs_seen = 0
        # Issue #15: a stalled side's FIN (POLLRDHUP), and bytes owed but not taken.
        self._client_fin_at: float | None = None
        self._target_fin_at: float | None = None
        self._target_stuck_since: float | None = None  # --stall-timeout, towards the target
        self._client_stuck_since: float | None = None

    def _stuck_since(self, since: float | None, sent: int, left: Outbox) -> float | None:
        """When bytes owed to a peer were last taken (``--stall-timeout``); None when
        nothing is owed. One clock read per partial write, none when a write drains."""
        if not left or not self.limits.stall_timeout:
            return None
        if sent or since is None:
            return time.monotonic()
        return since

    def _note_undelivered(self) -> None:
        """Say why a session ended with bytes still owed (unless a limit already says)."""
        info = self.stream.close_info
        if self.reaped is not None or info is None or info.reason in LIMIT_REASONS:
            return
        if self.to_target and not self._target_lost:
            self.reaped = UNDELIVERED % (len(self.to_target), "target")
        elif self.to_client and not self._client_lost:
            self.reaped = UNDELIVERED % (len(self.to_client), "client")

    # Provided by the relay.
    def _close_by_us(self, code: CloseCode, reason: str) -> None:
        raise NotImplementedError

    def _lose_client(self) -> None:
        raise NotImplementedError

    def _end_target(self) -> None:
        raise NotImplementedError

    def _drop_target(self) -> None:
        raise NotImplementedError

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
        return (self._next_ping, idle, self._session_end, pong,
                _plus(self._client_fin_at, limits.close_timeout),
                _plus(self._target_fin_at, limits.close_timeout),
                _plus(self._target_stuck_since, limits.stall_timeout),
                _plus(self._client_stuck_since, limits.stall_timeout))

    def _on_tick(self) -> None:
        """Pings and the per-session limits, checked after every wake-up."""
        if self.stream.close_info is not None:
            return
        now = time.monotonic()
        limits = self.limits
        if self._reap(now) or self._stalled(now):
            return
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

    def _reap(self, now: float) -> bool:
        """A side sent its FIN while not read, and the other side has not drained in the
        close timeout: end the session now (issue #15; it already waited that long)."""
        wait = self.limits.close_timeout
        if self._client_fin_at is not None and now >= self._client_fin_at + wait:
            self.reaped = CLIENT_LEFT
            self._lose_client()
        elif self._target_fin_at is not None and now >= self._target_fin_at + wait:
            self.reaped = TARGET_LEFT
            self._end_target()
        else:
            return False
        self._close_deadline = now
        return True

    def _stalled(self, now: float) -> bool:
        """``--stall-timeout``: a peer took no byte of what it is owed for that long."""
        limit = self.limits.stall_timeout
        if not limit:
            return False
        if self._target_stuck_since is not None and now >= self._target_stuck_since + limit:
            self._drop_target()  # what it did not take it will not take now
            self._close_by_us(INTERNAL_ERROR, TARGET_STALLED)
        elif self._client_stuck_since is not None and now >= self._client_stuck_since + limit:
            # Queued behind what the client does not read: the close deadline drops it.
            self._close_by_us(INTERNAL_ERROR, CLIENT_STALLED)
        else:
            return False
        return True

    def _pong_overdue(self, now: float) -> bool:
        """``--heartbeat-timeout``: any pong answers every ping sent before it."""
        if not self.limits.heartbeat_timeout:
            return False
        if self.stream.pongs != self._pongs_seen:
            self._pongs_seen = self.stream.pongs
            self._unanswered_since = None
        since = self._unanswered_since
        return since is not None and now >= since + self.limits.heartbeat_timeout


def _plus(start: float | None, seconds: float) -> float | None:
    """``start + seconds``, or None when the timer is not running or is off (0)."""
    return None if start is None or not seconds else start + seconds
