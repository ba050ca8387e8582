"""Parked reverse connections: VNC servers that dialled in, waiting for a browser (#20 §1).

A server's connection is parked under its repeater ID (``proxy.protocol.repeaterid``)
until one session takes it. The rules, each with a log line and an event count for the
metrics (``ParkingLot.events``):

- one parked connection serves one session (``take`` removes it);
- a server that dials in with an ID already parked replaces the parked one, so a device
  that reconnects after a network change is not locked out by its own stale connection;
- ``max_parked`` in all and ``max_per_ip`` per server address refuse more;
- a parked connection whose server goes away (FIN, RST, keepalive failure) is dropped
  by the watcher thread; what the server sends before pairing (its RFB banner) is
  held, at most ``HOLD_LIMIT`` bytes, and handed to the session first.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from proxy.transport.sockio import shut_and_close

log = logging.getLogger("proxy.repeater")

#: Bytes held from a parked server before pairing: an RFB banner is 12 bytes; a server
#: that sends more while nobody listens is not a VNC server waiting for a viewer.
HOLD_LIMIT = 4096
_WATCH = select.POLLIN | select.POLLERR | select.POLLHUP | getattr(select, "POLLRDHUP", 0)

PARKED, REPLACED = "parked", "replaced"
REFUSED_FULL, REFUSED_PER_IP = "refused_full", "refused_per_ip"
DROPPED, PAIRED = "dropped", "paired"
CLOSED = "closed"  # the lot is closed: the server is shutting down
#: Counted by ``proxy.transport.reverse``: outside --reverse-allow, no valid ID block.
REFUSED_ADDRESS, REFUSED_ID = "refused_address", "refused_id"
REFUSED_BUSY = "refused_busy"  # too many ID handshakes under way


@dataclass(eq=False)
class Parked:
    """One parked server connection."""

    repeater_id: str
    sock: socket.socket
    peer: str
    #: What the server sent before pairing, delivered to the client first.
    held: bytearray = field(default_factory=bytearray)


class ParkingLot:
    """The parked connections of one process, by ID; thread-safe."""

    def __init__(self, max_parked: int, max_per_ip: int) -> None:
        self.max_parked, self.max_per_ip = max_parked, max_per_ip
        self._parked: dict[str, Parked] = {}
        self._changed = threading.Condition()
        #: How often each rule applied: parked, replaced, refused_*, dropped, paired.
        self.events: Counter[str] = Counter()
        self._closed = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Start the watcher (idempotent). Not in ``__init__``: ``--daemon`` forks after the
        server is built, and neither threads nor unlisted descriptors survive that."""
        with self._changed:
            if self._watcher is not None or self._closed:
                return
            self._wake_r, self._wake_w = socket.socketpair()
            self._watcher = threading.Thread(target=self._watch, args=(self._wake_r,),
                                             name="repeater-watch", daemon=True)
            self._watcher.start()

    def park(self, repeater_id: str, sock: socket.socket, peer: str) -> str:
        """Park ``sock`` under ``repeater_id``; the outcome (an event name).

        A refused socket is closed here, and so is a replaced one, and one that finished
        its handshake after ``close`` (shutting down).
        """
        with self._changed:
            if self._closed:
                shut_and_close(sock)
                return CLOSED
            old = self._parked.get(repeater_id)
            outcome = self._refusal(peer, old)
            if outcome is None:
                outcome = PARKED if old is None else REPLACED
                self._parked[repeater_id] = Parked(repeater_id, sock, peer)
                self._changed.notify_all()
            self.events[outcome] += 1
        if outcome == REPLACED and old is not None:
            log.info("%s: repeater ID %s dialled in again; replacing the parked connection "
                     "from %s", peer, repeater_id, old.peer)
            shut_and_close(old.sock)
        elif outcome == PARKED:
            log.info("%s: parked under repeater ID %s", peer, repeater_id)
        else:
            limit = self.max_parked if outcome == REFUSED_FULL else self.max_per_ip
            scope = "in all" if outcome == REFUSED_FULL else f"from {peer}"
            log.info("%s: repeater ID %s refused: %d connections parked %s", peer,
                     repeater_id, limit, scope)
            shut_and_close(sock)
        self._wake()
        return outcome

    def _refusal(self, peer: str, old: Parked | None) -> str | None:
        """REFUSED_FULL, REFUSED_PER_IP or None; a replaced connection does not count."""
        others = [p for p in self._parked.values() if p is not old]
        if self.max_parked and len(others) >= self.max_parked:
            return REFUSED_FULL
        if self.max_per_ip and sum(p.peer == peer for p in others) >= self.max_per_ip:
            return REFUSED_PER_IP
        return None

    def take(self, repeater_id: str, wait: float) -> Parked | None:
        """The connection parked under ``repeater_id``, waiting up to ``wait`` seconds for
        it to dial in; None if it did not. The caller owns (and closes) its socket."""
        deadline = time.monotonic() + wait
        with self._changed:
            while repeater_id not in self._parked:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._changed.wait(left)
            parked = self._parked.pop(repeater_id)
            self.events[PAIRED] += 1
        log.info("%s: repeater ID %s paired", parked.peer, repeater_id)
        self._wake()
        return parked

    def count(self, event: str) -> None:
        with self._changed:
            self.events[event] += 1

    def counts(self) -> dict[str, int]:
        """A copy of ``events``, for the metrics."""
        with self._changed:
            return dict(self.events)

    def parked_ids(self) -> list[str]:
        with self._changed:
            return sorted(self._parked)

    def close(self) -> None:
        """Stop the watcher and close every parked connection."""
        with self._changed:
            self._closed = True
            parked, self._parked = list(self._parked.values()), {}
            self._changed.notify_all()
        self._wake()
        if self._watcher is not None:
            self._watcher.join(5.0)
        for entry in parked:
            shut_and_close(entry.sock)
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _wake(self) -> None:
        try:
            if self._wake_w is not None:
                self._wake_w.send(b"w", socket.MSG_DONTWAIT)
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed

    def _watch(self, wake: socket.socket) -> None:
        """Notice parked servers going away; hold what they send before pairing."""
        while True:
            with self._changed:
                if self._closed:
                    return
                by_fd = {p.sock.fileno(): p for p in self._parked.values()}
            poller = select.poll()
            poller.register(wake, select.POLLIN)
            for fd in by_fd:
                poller.register(fd, _WATCH)
            for fd, _events in poller.poll():
                if fd == wake.fileno():
                    _drain(wake)
                elif fd in by_fd:
                    self._on_readable(by_fd[fd])

    def _on_readable(self, entry: Parked) -> None:
        """Read what a parked server sent, under the lock so ``take`` cannot race it."""
        reason = None
        with self._changed:
            if self._parked.get(entry.repeater_id) is not entry:
                return  # taken or replaced meanwhile: not ours to read any more
            try:
                data = entry.sock.recv(HOLD_LIMIT, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                data, reason = b"", str(exc)
            if data and len(entry.held) + len(data) <= HOLD_LIMIT:
                entry.held += data
                return
            reason = reason or ("server closed the connection" if not data
                                else f"sent over {HOLD_LIMIT} bytes before pairing")
            del self._parked[entry.repeater_id]
            self.events[DROPPED] += 1
        log.info("%s: parked repeater ID %s dropped: %s", entry.peer, entry.repeater_id, reason)
        shut_and_close(entry.sock)


def _drain(wake: socket.socket) -> None:
    try:
        wake.recv(4096, socket.MSG_DONTWAIT)
    except OSError:
        pass
