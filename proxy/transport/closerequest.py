"""An operator's request to close one session, which wakes that session's relay (issue #21).

The relay's ``poll()`` loop may block with no timeout, so a flag alone would not be
seen: the request is a descriptor the relay polls, made readable by ``request()``.
``os.eventfd`` costs one descriptor per session (a socketpair where there is none);
the handler only makes one with ``--admin-path``. The relay then closes the session
as it closes any other (``Relay._on_stop``): Close frame to the client, target closed.
"""

from __future__ import annotations

import os
import socket
import threading


class CloseRequest:
    """Set once from any thread with the close code and reason; polled by one relay."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.code: int | None = None  # guarded by _lock until set
        self.reason = ""
        self._pair: tuple[socket.socket, socket.socket] | None = None
        self._fd = -1
        if hasattr(os, "eventfd"):
            self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:  # pragma: no cover - not Linux
            self._pair = socket.socketpair()
            self._pair[1].setblocking(False)

    def fileno(self) -> int:
        return self._pair[0].fileno() if self._pair is not None else self._fd

    def request(self, code: int, reason: str) -> bool:
        """Ask for the close; False if one was already asked for (or it is closed)."""
        with self._lock:
            if self.code is not None or self.fileno() < 0:
                return False
            self.code, self.reason = code, reason
            try:
                if self._pair is not None:
                    self._pair[1].send(b"!")
                else:
                    os.eventfd_write(self._fd, 1)
            except OSError:
                pass  # cannot happen on a fresh counter; the relay reads code anyway
            return True

    def close(self) -> None:
        with self._lock:
            if self._pair is not None:
                for sock in self._pair:
                    sock.close()
            elif self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
