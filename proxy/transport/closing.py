"""Ending a session that has no relay: the target connect or the recording failed.

I/O over the client socket only; the close frame comes from the session's
``ClientStream``. Blocking, with every wait bounded by the close timeout.
"""

from __future__ import annotations

import socket
import time

from proxy.protocol.closes import CloseCode
from proxy.protocol.stream import ClientStream
from proxy.settings import Limits
from proxy.transport.sockio import recv_within


def close_session(
    client: socket.socket, stream: ClientStream, code: CloseCode, reason: str, limits: Limits
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
            stream.receive(recv_within(client, limits.recv_size, deadline) or None)
    except OSError:  # TimeoutError included: the deadline passed
        return
