"""Connection limits: ``--max-connections`` and ``--max-connections-per-ip``.

The server holds one ``Admission`` (a locked counter, STYLE.md §8.1 rule 3). Every handler
takes a ``Ticket`` once its connection is set up and releases it when the connection ends. A
connection over a limit is still read (within the handshake deadline) and answered
``503 Service Unavailable`` with ``Retry-After``, before any upgrade, so a browser sees
a status instead of a hang or a reset. Answering takes a thread for at most the handshake
deadline; ``hard_limit`` bounds those too: beyond it the accept loop closes new
connections at once (``ProxyServer.process_request``).
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
from collections import Counter
from http import HTTPStatus
from typing import Any

from proxy.errors import HandshakeError
from proxy.settings import Settings

#: File descriptors one proxied connection holds: client and target sockets.
FDS_PER_CONNECTION = 2
#: Share of the open-file limit the automatic ``--max-connections`` may use; the rest is
#: for the listener, logs, ``--record`` files, plugins and connections being refused.
FD_SHARE = 0.9
#: Connections over the limit that may be answered 503 at the same time; beyond
#: ``max_connections + REFUSING`` new connections are closed without an answer.
REFUSING = 256
#: Seconds a client is asked to wait before retrying (``Retry-After``).
RETRY_AFTER = 5

TOO_MANY = "Too many connections"
TOO_MANY_FROM_ADDRESS = "Too many connections from this address"


def default_max_connections(fds_per_connection: int = FDS_PER_CONNECTION) -> int:
    """90 % of the hard open-file limit (the runner raises the soft one to it), halved.

    9000 with the common 20000; at least 1.
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    return max(1, int(hard * FD_SHARE) // fds_per_connection)


class Admission:
    """Counts live connections, in all and per peer address; thread-safe.

    With ``--workers`` and an explicit ``--max-connections`` the total is one counter in
    shared memory, created before the workers fork, so the limit holds for the service as
    a whole. The automatic limit (the open-file limit is per process) and
    ``--max-connections-per-ip`` count per worker (docs/scaling.rst).
    """

    def __init__(self, settings: Settings) -> None:
        fds = FDS_PER_CONNECTION + (1 if settings.record else 0)
        self.max_connections = settings.max_connections or default_max_connections(fds)
        self.max_per_address = settings.max_connections_per_ip
        self.hard_limit = self.max_connections + REFUSING
        self._lock = threading.Lock()
        self._live = 0  # admitted connections of this process
        self._shared: Any = None  # multiprocessing.Value: all workers' admitted connections
        if settings.workers > 1 and settings.max_connections:
            self._shared = multiprocessing.get_context("fork").Value("l", 0)
        self._per_address: Counter[str] = Counter()

    @property
    def shared(self) -> bool:
        """The limit is one count for all workers (else each worker has its own)."""
        return self._shared is not None

    @property
    def live(self) -> int:
        """Admitted connections: of all workers when the limit is shared."""
        if self._shared is not None:
            with self._shared.get_lock():
                return int(self._shared.value)
        with self._lock:
            return self._live

    def enter(self, address: str | None) -> HandshakeError | None:
        """Admit a connection from ``address``; None = admitted (call ``leave`` later),
        otherwise the 503 to answer with (the connection was not counted).

        ``address`` None: not known yet (the peer is a ``--trusted-proxy`` whose client
        the request headers will name); only the total counts until ``claim``.
        """
        with self._lock:
            if not self._take():
                return _unavailable(TOO_MANY)
            if address is not None and self._over(address):
                self._give_back()
                return _unavailable(TOO_MANY_FROM_ADDRESS)
            self._live += 1
            if address is not None and self.max_per_address:
                self._per_address[address] += 1
            return None

    def admit(self, address: str | None) -> Ticket:
        """``enter`` as one object: the refusal, or the count to release (#17 §2)."""
        return Ticket(self, address, self.enter(address))

    def claim(self, address: str) -> HandshakeError | None:
        """Count a connection admitted with ``enter(None)`` under ``address`` now; the
        503 if that address is at its limit (then nothing changes)."""
        with self._lock:
            if self._over(address):
                return _unavailable(TOO_MANY_FROM_ADDRESS)
            if self.max_per_address:
                self._per_address[address] += 1
            return None

    def _over(self, address: str) -> bool:
        return bool(self.max_per_address) and self._per_address[address] >= self.max_per_address

    def _take(self) -> bool:
        """One more admitted connection if under ``max_connections``; held: ``_lock``."""
        if self._shared is None:
            return self._live < self.max_connections
        with self._shared.get_lock():
            if self._shared.value >= self.max_connections:
                return False
            self._shared.value += 1
            return True

    def _give_back(self) -> None:
        if self._shared is not None:
            with self._shared.get_lock():
                self._shared.value -= 1

    def leave(self, address: str | None) -> None:
        """The connection ``enter``-ed (and maybe ``claim``-ed) as ``address`` ended."""
        with self._lock:
            self._live -= 1
            self._give_back()
            if address is not None and self.max_per_address:
                self._per_address[address] -= 1
                if self._per_address[address] <= 0:
                    del self._per_address[address]


def _unavailable(reason: str) -> HandshakeError:
    return HandshakeError(HTTPStatus.SERVICE_UNAVAILABLE, reason,
                          headers=[("Retry-After", str(RETRY_AFTER))])


class Ticket:
    """One connection's place in the counts, from admission to ``release`` (#17 §2).

    ``refusal``: the 503 to answer (then only the total may be counted, see ``name``),
    None while admitted. A ``Ticket()`` without an admission stands for a connection
    that never got as far (a silent client, a refused TLS handshake): nothing to release.
    """

    def __init__(self, admission: Admission | None = None, address: str | None = None,
                 refusal: HandshakeError | None = None) -> None:
        self.refusal = refusal
        #: The address the connection is counted under (None: the total only).
        self.address = address
        # None once released, or when enter() refused (nothing was counted then).
        self._admission = admission if refusal is None else None

    def name(self, address: str) -> None:
        """``--trusted-proxy``: the request named its client; count it under ``address``
        now (``--max-connections-per-ip``), or take the 503 if that address is full."""
        if self._admission is None or self.address is not None or self.refusal is not None:
            return
        self.refusal = self._admission.claim(address)
        if self.refusal is None:
            self.address = address

    def release(self) -> None:
        """The connection ended; a second call does nothing."""
        admission, self._admission = self._admission, None
        if admission is not None:
            admission.leave(self.address)
