"""The live sessions of one process, for ``--admin-path`` (issue #21).

A handler adds its session once the relay starts and removes it when the relay ends;
the admin API lists them and asks one to close (``CloseRequest``, which the session's
relay polls). The figures are read without stopping the relay: byte counts from the
relay itself, messages and the time of the last data from a ``LiveTap`` on its data
path (so a relay without ``--admin-path`` pays nothing). Field names are those of the
``--log-format json`` session record (``proxy.observe.sessionlog.record``) where the
record has the figure; what only a live session has gets a name of its own.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from proxy.observe import jsonlog
from proxy.observe.metrics import ByteCounts
from proxy.observe.sessionlog import Session
from proxy.transport.closerequest import CloseRequest
from proxy.transport.relay import Tap

#: Characters of a token shown without ``--admin-show-tokens``.
TOKEN_SHOWN = 4


class LiveTap:
    """Counts data messages each way and notes when data last moved; passes every call
    on to ``inner`` (the ``--traffic``/``--record`` taps), if any."""

    def __init__(self, inner: Tap | None = None) -> None:
        self.inner = inner
        self.messages_from_client = 0
        self.messages_from_target = 0
        self.last_data = time.monotonic()

    def from_client(self, data: bytes, messages: int) -> None:
        self.messages_from_client += messages
        self.last_data = time.monotonic()
        if self.inner is not None:
            self.inner.from_client(data, messages)

    def from_target(self, data: bytes) -> None:
        self.messages_from_target += 1  # one read from the target is one frame
        self.last_data = time.monotonic()
        if self.inner is not None:
            self.inner.from_target(data)

    def sent_to_target(self, complete: bool) -> None:
        if self.inner is not None:
            self.inner.sent_to_target(complete)

    def sent_to_client(self, complete: bool) -> None:
        if self.inner is not None:
            self.inner.sent_to_client(complete)


@dataclass
class LiveSession:
    """One relaying session as the registry holds it (the handler owns the parts)."""

    id: int
    session: Session
    tap: LiveTap
    close_request: CloseRequest = field(default_factory=CloseRequest)
    #: The relay's byte counts; set by ``SessionRegistry.start``.
    relay: ByteCounts | None = None

    def describe(self, show_tokens: bool, now: float | None = None) -> dict[str, Any]:
        """The API's object for this session (``sessionlog.record``'s names)."""
        now = time.monotonic() if now is None else now
        session, token, relay = self.session, self.session.token, self.relay
        if token is not None and not show_tokens:
            token = token[:TOKEN_SHOWN]
        return {
            "id": self.id,
            "time": jsonlog.iso_time(session.started),
            "client": session.client or session.peer,
            "peer": session.peer,
            "peer_port": session.peer_port,
            "target": session.target,
            "token": token,
            "subprotocol": session.subprotocol,
            "tls": session.tls,
            "bytes_from_client": relay.received_from_client if relay else 0,
            "bytes_from_target": relay.received_from_target if relay else 0,
            "messages_from_client": self.tap.messages_from_client,
            "messages_from_target": self.tap.messages_from_target,
            "duration": round(now - session.started_monotonic, 3),
            "idle": round(max(0.0, now - self.tap.last_data), 3),
            "pid": os.getpid(),
        }


class SessionRegistry:
    """Live sessions by id; thread-safe (handler threads add and remove, admin reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[int, LiveSession] = {}  # guarded by _lock

    @staticmethod
    def watch(session_id: int, session: Session, inner: Tap | None) -> LiveSession:
        """A session about to relay: its tap and close request go to the ``Relay``."""
        return LiveSession(session_id, session, LiveTap(inner))

    def start(self, live: LiveSession, relay: ByteCounts) -> None:
        """The relay runs: list the session from now on."""
        live.relay = relay
        with self._lock:
            self._sessions[live.id] = live

    def end(self, live: LiveSession) -> None:
        """The relay returned: unlist the session and free its close request."""
        with self._lock:
            self._sessions.pop(live.id, None)
        live.close_request.close()

    def snapshot(self) -> list[LiveSession]:
        """The live sessions in id order."""
        with self._lock:
            return sorted(self._sessions.values(), key=lambda live: live.id)

    def get(self, session_id: int) -> LiveSession | None:
        with self._lock:
            return self._sessions.get(session_id)

    def matching(self, token: str | None = None, target: str | None = None) -> list[LiveSession]:
        """The sessions with this whole token and/or this target (``host:port`` or path)."""
        return [live for live in self.snapshot()
                if (token is None or live.session.token == token)
                and (target is None or live.session.target == target)]
