"""In-memory WebSocket pairs for the pure and socketpair tests.

The server side under test is always fed by an independent implementation: a wsproto
*client* (as wsproto's own tests do with h11), or raw frames built here for the
protocol violations a correct client cannot produce.
"""

from __future__ import annotations

import os
import struct

from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Event, Request,
                            TextMessage)

from proxy.protocol import handshake


def open_pair() -> tuple[WSConnection, Connection]:
    """A wsproto client and an OPEN server connection built by ``handshake.accept``."""
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="example", target="/", subprotocols=["binary"]))
    key = next(line for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:")).split(b":", 1)[1].strip()
    server, response = handshake.accept(handshake.Upgrade(key.decode(), "binary"), [])
    client.receive_data(response)
    assert isinstance(next(client.events()), AcceptConnection)
    assert server.state is ConnectionState.OPEN and client.state is ConnectionState.OPEN
    return client, server


def client_events(client: WSConnection, data: bytes) -> list[Event]:
    client.receive_data(data)
    return list(client.events())


def messages(client: WSConnection, data: bytes) -> list[tuple[str, bytes]]:
    """The data messages in ``data`` as the client parses them: ("text" | "binary", bytes)."""
    out = []
    for event in client_events(client, data):
        if isinstance(event, TextMessage):
            out.append(("text", event.data.encode()))
        elif isinstance(event, BytesMessage):
            out.append(("binary", bytes(event.data)))
    return out


def close_of(client: WSConnection, data: bytes) -> tuple[int, str]:
    """The (code, reason) of the Close frame in ``data`` as the client parses it."""
    closes = [e for e in client_events(client, data) if isinstance(e, CloseConnection)]
    assert len(closes) == 1, closes
    return int(closes[0].code), closes[0].reason or ""


def raw_frame(opcode: int, payload: bytes = b"", fin: bool = True, masked: bool = True,
              rsv: int = 0) -> bytes:
    """One frame as a client would put it on the wire, including invalid ones."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
