"""Standard input and output as the relay's TCP side (``websockify-client -``, issue #20 §2).

The relay polls sockets; pipes and terminals cannot stand in for one (no ``recv``,
no POLLRDHUP). So one end of a socketpair goes to the relay, and two threads copy
between the other end and fds 0 and 1, one bounded read at a time: the socketpair's
buffers bound what is held, and a blocked stdout stalls the relay through them (the
relay's backpressure, unchanged). Standard input's EOF becomes the socket's FIN, which
the relay treats as the target closing (close 1000); the relay's close of its end ends
the copy to standard output.
"""

from __future__ import annotations

import os
import socket
import threading

__all__ = ["StdioPump"]

CHUNK = 64 * 1024  # bytes per read


class StdioPump:
    """Copies fd ``stdin`` into the socketpair and the socketpair into fd ``stdout``."""

    def __init__(self, stdin: int = 0, stdout: int = 1) -> None:
        self.relay_end, self._ours = socket.socketpair()
        self._stdin, self._stdout = stdin, stdout
        self._writer = threading.Thread(target=self._to_stdout, name="stdout", daemon=True)
        # A daemon: it may sit in read(0) after the session ended (the process exits).
        self._reader = threading.Thread(target=self._from_stdin, name="stdin", daemon=True)

    def start(self) -> socket.socket:
        """Start copying; returns the socket the relay uses as its target."""
        self._writer.start()
        self._reader.start()
        return self.relay_end

    def finish(self, timeout: float) -> None:
        """Wait (bounded) until what the relay sent has reached standard output."""
        self._writer.join(timeout)
        self._ours.close()

    def _from_stdin(self) -> None:
        try:
            while data := os.read(self._stdin, CHUNK):
                self._ours.sendall(data)
            self._ours.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the relay's end is closed: the session is over

    def _to_stdout(self) -> None:
        try:
            while data := self._ours.recv(CHUNK):
                view = memoryview(data)
                while view:
                    view = view[os.write(self._stdout, view):]
        except OSError:
            pass  # stdout closed by its reader (a broken pipe): nothing more to deliver
        finally:
            try:
                self._ours.shutdown(socket.SHUT_RDWR)  # stops the relay's writes too
            except OSError:
                pass
