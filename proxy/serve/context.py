"""What a request needs of its server, as one object handed to the handler (#17 §2).

``RequestContext`` is frozen: the server builds it once (again in a ``--workers`` child,
which gets its own stop signal) and every handler thread reads it, instead of a dozen
names off ``self.server``; the handler never imports the server. The parts that change
while serving are objects with their own locks: ``Connections`` here, ``Admission``,
``Metrics``, ``ServerTLS`` (a SIGHUP swaps its context) and the ``StopSignal``.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from proxy.access.admission import Admission
from proxy.observe.metrics import Metrics
from proxy.observe.registry import SessionRegistry
from proxy.serve.adminsessions import LocalSessions
from proxy.settings import Settings
from proxy.transport.parking import ParkingLot
from proxy.transport.sockio import StopSignal
from proxy.transport.tls import ServerTLS


class Connections:
    """The server's connections: how many are live, session numbers, upgrades, the drain.

    Thread-safe: handler threads and the accept loop share it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live = 0  # connections being handled; guarded by _lock
        self._idle_since = time.monotonic()  # when _live last became 0; guarded by _lock
        self._sessions = 0  # the last session number given; guarded by _lock
        self._session_step = 1  # --workers: each worker numbers every count-th connection
        #: Connections that reached the 101, and the client of the last one (--run-once).
        self.upgrades = 0
        self.last_upgraded = ""
        #: Set by the runner on SIGTERM with --drain-timeout: new sessions get 503.
        self.draining = False

    @property
    def live(self) -> int:
        with self._lock:
            return self._live

    def begin(self, limit: int) -> bool:
        """Count one more live connection, unless ``limit`` are live already."""
        with self._lock:
            if self._live >= limit:
                return False
            self._live += 1
            return True

    def end(self) -> None:
        with self._lock:
            self._live -= 1
            if not self._live:
                self._idle_since = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last connection ended (0 while any is live)."""
        with self._lock:
            return 0.0 if self._live else time.monotonic() - self._idle_since

    def number_from(self, first: int, step: int) -> None:
        """``--workers``: session numbers ``first``, ``first + step``, …"""
        with self._lock:
            self._sessions, self._session_step = first - step, step

    def next_session_id(self) -> int:
        """Number the next connection from 1, as websockify's ``handler_id`` (spec §4.1).

        Every connection counts (HTTP or WebSocket, failed or not), so ``--record`` file
        numbers have gaps where websockify's do.
        """
        with self._lock:
            self._sessions += self._session_step
            return self._sessions

    def note_upgrade(self, client: str) -> None:
        """A handler sent its 101 (for ``--run-once``)."""
        with self._lock:
            self.upgrades += 1
            self.last_upgraded = client


@dataclass(frozen=True)
class RequestContext:
    """Everything a handler reads of the server; built by ``ProxyServer``."""

    settings: Settings
    #: The plugins, built once at startup and shared by every connection (spec §8.1, §9.1).
    token_plugin: Any
    auth_plugin: Any
    #: The listener's TLS; read ``server_tls.context`` once per connection (SIGHUP).
    server_tls: ServerTLS
    #: ``--ssl-target``: the context for TLS to the target, None without it.
    target_context: ssl.SSLContext | None
    admission: Admission
    metrics: Metrics
    #: Set on shutdown: every relay closes with 1001.
    stop_signal: StopSignal
    connections: Connections
    #: ``--workers``: this worker's index (from 0); None in a single process.
    worker_index: int | None = None
    #: ``--admin-path``: the live sessions (issue #21); None without it.
    sessions: SessionRegistry | None = None
    #: ``--admin-path`` with ``--workers``: every worker's sessions (``admingroup``).
    admin_view: LocalSessions | None = None
    #: ``--reverse-listen``: the parked servers (issue #20 §1); None without it.
    parking: ParkingLot | None = None
