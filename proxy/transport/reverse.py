"""``--reverse-listen``: where VNC servers dial in, and how they get parked (#20 §1).

One acceptor thread per address; each accepted server gets a short-lived thread that
reads its 250-byte ID block under the handshake deadline and parks it
(``proxy.transport.parking``). A server outside ``--reverse-allow`` or without a valid
ID block in time is closed with a log line.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Sequence

from proxy.protocol.repeaterid import BLOCK_SIZE, BadRepeaterId, parse_block
from proxy.transport import parking
from proxy.transport.parking import ParkingLot
from proxy.transport.sockio import recv_within, shut_and_close
from proxy.transport.targets import tune_tcp

log = logging.getLogger("proxy.repeater")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: TCP keepalive for parked servers: probe after a minute idle, every 10 s, give up after
#: 3 unanswered (a parked connection is idle by design; the OS default waits two hours).
KEEPALIVE = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3))
#: ID handshakes (a thread each, up to the handshake deadline) under way at once.
MAX_HANDSHAKES = 64


def keep_alive(sock: socket.socket) -> None:
    """SO_KEEPALIVE (``tune_tcp``) with ``KEEPALIVE``'s timing where the OS has the options."""
    tune_tcp(sock)
    for name, value in KEEPALIVE:
        option = getattr(socket, name, None)
        if option is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def allowed(host: str, networks: Sequence[Network]) -> bool:
    """Whether ``host`` may dial in: any address when ``networks`` is empty."""
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return any(address in net or (mapped is not None and mapped in net) for net in networks)


def read_block(sock: socket.socket, deadline: float) -> bytes:
    """Up to ``BLOCK_SIZE`` bytes, read until the block is complete, EOF or the deadline."""
    block = b""
    while len(block) < BLOCK_SIZE:
        try:
            data = recv_within(sock, BLOCK_SIZE - len(block), deadline)
        except TimeoutError:
            break
        if not data:
            break
        block += data
    return block


class ReverseListener:
    """The ``--reverse-listen`` sockets and their acceptor threads."""

    def __init__(self, sockets: Sequence[socket.socket], lot: ParkingLot,
                 networks: Sequence[Network], handshake_timeout: float,
                 max_handshakes: int = MAX_HANDSHAKES) -> None:
        self.sockets, self.lot = list(sockets), lot
        self.networks, self.handshake_timeout = list(networks), handshake_timeout
        self.max_handshakes = max_handshakes
        #: One per handshake thread: a flood of silent connections cannot start more.
        self._slots = threading.BoundedSemaphore(max_handshakes)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one acceptor per socket. The ``Thread`` objects are made here, not in
        ``__init__``: ``--daemon`` forks after the server is built, and on Python 3.13 a
        thread object that exists at a fork is marked finished in the child, so its
        ``start()`` raises "thread already started" (the daemon died after its banner)."""
        self._threads = [threading.Thread(target=self._accept_loop, args=(s,), daemon=True,
                                          name="repeater-accept") for s in self.sockets]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop accepting: shutdown() wakes the threads blocked in accept()."""
        for sock in self.sockets:
            shut_and_close(sock)
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(5.0)

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, address = listener.accept()
            except OSError:
                return  # closed by close()
            host = str(address[0]) if isinstance(address, tuple) else "?"
            if not allowed(host, self.networks):
                log.info("%s: refused: not in --reverse-allow", host)
                self.lot.count(parking.REFUSED_ADDRESS)
                shut_and_close(sock)
                continue
            if not self._slots.acquire(blocking=False):
                log.info("%s: refused: %d ID handshakes under way", host, self.max_handshakes)
                self.lot.count(parking.REFUSED_BUSY)
                shut_and_close(sock)
                continue
            threading.Thread(target=self._handshake, args=(sock, host), daemon=True,
                             name="repeater-handshake").start()

    def _handshake(self, sock: socket.socket, host: str) -> None:
        try:
            repeater_id = self._read_id(sock, host)
        finally:
            # Before parking: once a server shows as parked its slot is free again.
            self._slots.release()
        if repeater_id is not None:
            self.lot.park(repeater_id, sock, host)

    def _read_id(self, sock: socket.socket, host: str) -> str | None:
        """The server's repeater ID; None (the socket closed, logged) if it sent none."""
        try:
            keep_alive(sock)  # a parked server that vanishes without a FIN is noticed
            block = read_block(sock, time.monotonic() + self.handshake_timeout)
            repeater_id = parse_block(block)
            sock.settimeout(None)
        except BadRepeaterId as exc:
            log.info("%s: no valid repeater ID block: %s", host, exc)
            self.lot.count(parking.REFUSED_ID)
            shut_and_close(sock)
            return None
        except OSError as exc:
            log.info("%s: repeater handshake failed: %s", host, exc)
            shut_and_close(sock)
            return None
        return repeater_id
