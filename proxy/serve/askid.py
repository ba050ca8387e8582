"""noVNC's ``repeaterID`` route to a parked server (issue #20 §1; docs/repeater.rst).

The way UltraVNC's repeater talks to viewers: after the 101 the proxy sends
``RFB 000.000\\n`` as the first message, and the viewer answers with the 250-byte ``ID:``
block (``proxy.protocol.repeaterid``), which is consumed here. Then the session pairs
with the server parked under that ID (``reverseroute.take``) as with a token.
"""

from __future__ import annotations

import socket
import time

from proxy.errors import TargetError
from proxy.protocol.repeaterid import BLOCK_SIZE, BadRepeaterId, parse_block
from proxy.protocol.stream import ClientStream
from proxy.transport.sockio import recv_within

#: What UltraVNC's repeater sends a viewer first: "tell me your ID".
ASK = b"RFB 000.000\n"


class NoIdBlock(TargetError):
    """The client sent no valid ID block: close 1011 with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def ask_id(client: socket.socket, stream: ClientStream, leftover: bytes,
           timeout: float) -> tuple[str, bytes]:
    """Send ``ASK``, read the client's ID block within ``timeout``; the ID and any bytes
    the client sent after the block (for the server).

    Raises:
        NoIdBlock: no valid block in time, or the client closed or broke the protocol.
    """
    try:
        client.settimeout(timeout)
        client.sendall(b"".join(stream.frame_data(ASK)))
        got = _read_block(client, stream, leftover, time.monotonic() + timeout)
    except OSError as exc:
        raise NoIdBlock("No repeater ID from the client") from exc
    try:
        return parse_block(bytes(got[:BLOCK_SIZE])), bytes(got[BLOCK_SIZE:])
    except BadRepeaterId as exc:
        raise NoIdBlock("Invalid repeater ID block") from exc


def _read_block(client: socket.socket, stream: ClientStream, data: bytes | None,
                deadline: float) -> bytearray:
    """Client payload bytes until there are ``BLOCK_SIZE``; OSError when there cannot be."""
    got = bytearray()
    while True:
        if data:
            out = stream.receive(data)
            for chunk in out.client_chunks:  # pongs, the answer to a Close
                client.sendall(chunk)
            got += b"".join(out.target_chunks)
        if len(got) >= BLOCK_SIZE:
            return got
        if stream.close_info is not None or stream.failed:
            raise ConnectionResetError("the client closed before sending its ID")
        data = recv_within(client, 65536, deadline)
        if not data:
            raise ConnectionResetError("the client closed before sending its ID")
