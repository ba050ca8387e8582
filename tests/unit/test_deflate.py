"""proxy.protocol.deflate: bounded permessage-deflate, RFC 7692 offers (issue 9)."""

from __future__ import annotations

import zlib

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request
from wsproto.extensions import PerMessageDeflate

from proxy.protocol import handshake
from proxy.protocol.deflate import BoundedDeflate, parse_offer
from proxy.protocol.stream import ClientStream
from tests.support.wspair import client_events, messages, raw_frame


@pytest.mark.parametrize(("offer", "params"), [
    ("permessage-deflate", {}),
    ("permessage-deflate; client_max_window_bits", {"client_max_window_bits": None}),
    ("permessage-deflate; server_max_window_bits=8", {"server_max_window_bits": 8}),
    ("permessage-deflate; server_no_context_takeover", {"server_no_context_takeover": None}),
    ("permessage-deflate; server_max_window_bits", None),  # a value is required
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits=010", None),
    ("permessage-deflate; unknown", None),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("permessage-deflate; client_no_context_takeover=1", None),
])
def test_offers_are_parsed_as_rfc_7692_says(offer: str, params: dict[str, int] | None) -> None:
    assert parse_offer(offer) == params


def _compressed_pair(offer: str = "permessage-deflate", max_size: int = 1 << 20,
                     client_accepts: bool = True) -> tuple[WSConnection, ClientStream]:
    client = WSConnection(ConnectionType.CLIENT)
    client_ext = PerMessageDeflate()
    request = client.send(Request(host="x", target="/", subprotocols=["binary"],
                                  extensions=[client_ext]))
    key = next(line for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:")).split(b":", 1)[1].strip()
    ext = BoundedDeflate(max_size)
    upgrade = handshake.Upgrade(key.decode(), "binary", (offer,))
    server, response = handshake.accept(upgrade, [], [ext])
    if client_accepts:  # wsproto's client refuses server_max_window_bits=8
        client.receive_data(response)
        assert isinstance(next(client.events()), AcceptConnection)
    assert ext.enabled()
    return client, ClientStream(server, max_message_size=max_size, compressed=True)


def test_compressed_messages_travel_both_ways() -> None:
    client, stream = _compressed_pair()
    out = stream.receive(client.send(BytesMessage(data=b"a" * 10000)))
    assert out.to_target == b"a" * 10000
    reply = b"".join(stream.frame_data(b"b" * 10000))
    assert reply[0] & 0x40  # RSV1: compressed
    assert len(reply) < 200
    assert messages(client, reply) == [("binary", b"b" * 10000)]


def test_a_message_inflating_past_the_limit_is_closed_1009_without_inflating_it_all() -> None:
    client, stream = _compressed_pair(max_size=100000)
    out = stream.receive(client.send(BytesMessage(data=bytes(50_000_000))))
    assert out.to_target == b""
    closes = [e for e in client_events(client, out.to_client) if isinstance(e, CloseConnection)]
    assert closes[0].code == 1009


def test_a_bomb_over_the_message_limit_closes_1009_message_too_big() -> None:
    """Issue #15: the reason is the documented one, not wsproto's 'error in extension'."""
    client, stream = _compressed_pair(max_size=100000)
    out = stream.receive(client.send(BytesMessage(data=bytes(50_000_000))))
    closes = [e for e in client_events(client, out.to_client) if isinstance(e, CloseConnection)]
    assert (closes[0].code, closes[0].reason) == (1009, "Message too big")


def test_a_corrupt_deflate_stream_closes_1007_with_a_compression_reason() -> None:
    client, stream = _compressed_pair()
    # RSV1 set (compressed) and a payload that is not a deflate stream (block type 3).
    out = stream.receive(raw_frame(0x2, b"\xff\xff\xff\xff", rsv=4))
    closes = [e for e in client_events(client, out.to_client) if isinstance(e, CloseConnection)]
    assert (closes[0].code, closes[0].reason) == (1007, "Invalid compressed data")


@pytest.mark.parametrize("room", [64 * 1024, 512 * 1024])
def test_compressed_input_is_fed_only_as_far_as_its_worst_case_fits_the_room(room: int) -> None:
    """Issue #15: 61 KB of deflate data inflating to 60 MiB is held back, not inflated."""
    client, stream = _compressed_pair(max_size=64 << 20)
    wire = client.send(BytesMessage(data=bytes(60 << 20)))
    assert len(wire) < 70_000
    total = 0
    out = stream.receive(wire, room)
    while True:
        assert out.target_size <= room  # never more than the caller has room for
        total += out.target_size
        if not stream.backlog:
            break
        out = stream.receive(b"", room)  # the relay's pump once the buffer drained
    assert total == 60 << 20 and out.messages == 1


def test_an_eof_behind_a_compressed_backlog_waits_for_it() -> None:
    client, stream = _compressed_pair(max_size=64 << 20)
    wire = client.send(BytesMessage(data=bytes(8 << 20)))
    total = stream.receive(wire, 64 * 1024).target_size
    assert stream.backlog and stream.close_info is None
    total += stream.receive(None, 64 * 1024).target_size
    assert stream.close_info is None  # the data before the EOF is not dropped
    while stream.backlog:
        total += stream.receive(b"", 64 * 1024).target_size
    assert total == 8 << 20
    assert stream.close_info is not None and stream.close_info.code == 1006


def test_only_the_first_acceptable_offer_is_taken() -> None:
    ext = BoundedDeflate(1000)
    assert ext.accept("permessage-deflate; unknown=1") is None
    accepted = ext.accept("permessage-deflate; server_max_window_bits=10")
    assert accepted == "server_max_window_bits=10"
    assert ext.accept("permessage-deflate") is None
    assert ext.server_max_window_bits == 10


def test_window_bits_8_compress_without_back_references() -> None:
    _client, stream = _compressed_pair("permessage-deflate; server_max_window_bits=8",
                                       client_accepts=False)
    payload = b"abcdefgh" * 500
    frame = b"".join(stream.frame_data(payload))
    body = frame[4:]  # 2-byte header + 16-bit length
    inflater = zlib.decompressobj(-8)
    assert inflater.decompress(body + b"\x00\x00\xff\xff") == payload
    assert len(body) < len(payload)
