"""proxy.protocol.stream.ClientStream: the frame policy, fed by a wsproto client or raw frames."""

from __future__ import annotations

import base64

import pytest
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage

from proxy.protocol.stream import ClientStream, DataMode
from proxy.settings import ReplyFrames, TextFrames
from tests.support.wspair import (client_events, close_of, messages, open_pair,
                                  raw_frame)

TEXT_REJECT = "Unsupported: Text frames are not supported"


def stream_pair(**kwargs: object) -> tuple[object, ClientStream]:
    client, server = open_pair()
    return client, ClientStream(server, **kwargs)  # type: ignore[arg-type]


def test_a_binary_frame_spanning_reads_reaches_the_target_in_one_piece() -> None:
    """Held back until the frame is complete: an echo comes back in one frame (Autobahn 1.2.6)."""
    client, server = open_pair()
    stream = ClientStream(server)
    payload = bytes(range(256)) * 400
    wire = client.send(Message(data=payload))
    first = stream.receive(wire[:30000])
    assert first.to_target == b"" and first.messages == 0
    rest = stream.receive(wire[30000:])
    assert rest.target_chunks == [payload]
    assert rest.messages == 1


def test_a_large_binary_message_streams_in_bounded_pieces() -> None:
    """Never reassembled whole: pieces of at most `coalesce` bytes plus one read."""
    client, server = open_pair()
    stream = ClientStream(server, coalesce=64 * 1024)
    payload = bytes(range(256)) * 4096  # 1 MiB
    wire = client.send(Message(data=payload))
    pieces: list[bytes] = []
    for start in range(0, len(wire), 50000):
        out = stream.receive(wire[start:start + 50000])
        pieces.extend(bytes(chunk) for chunk in out.target_chunks)
    assert b"".join(pieces) == payload
    assert len(pieces) > 10
    assert max(len(piece) for piece in pieces) < 64 * 1024 + 50000


def test_each_fragment_of_a_text_message_goes_on_as_it_arrives() -> None:
    """Issue #15: text streams like binary; nothing waits for the end of the message."""
    client, server = open_pair()
    stream = ClientStream(server)
    part1 = stream.receive(client.send(Message(data="h\u00e9l", message_finished=False)))
    assert bytes(part1.to_target) == "h\u00e9l".encode() and part1.messages == 0
    part2 = stream.receive(client.send(Message(data="lo \u2603", message_finished=True)))
    assert bytes(part2.to_target) == "lo \u2603".encode()
    assert part2.messages == 1


def test_a_utf8_sequence_split_across_frames_waits_only_for_its_remaining_bytes() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    snowman = "\u2603".encode()  # 3 bytes
    first = stream.receive(raw_frame(0x1, b"ab" + snowman[:1], fin=False))
    assert first.to_target == b"ab"
    second = stream.receive(raw_frame(0x0, snowman[1:] + b"c", fin=True))
    assert second.to_target == snowman + b"c" and second.messages == 1


def test_text_fed_one_byte_at_a_time_reaches_the_target_whole_and_valid() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    text = "caf\u00e9 \u2603 \U0001f600 end"
    wire = client.send(Message(data=text))
    pieces = [bytes(stream.receive(wire[i:i + 1]).to_target) for i in range(len(wire))]
    assert b"".join(pieces) == text.encode()
    for piece in pieces:
        piece.decode("utf-8")  # every forwarded piece is valid UTF-8 by itself


def test_text_is_rejected_with_websockify_close_when_configured() -> None:
    client, server = open_pair()
    stream = ClientStream(server, text_frames=TextFrames.REJECT)
    out = stream.receive(client.send(Message(data="Hello")))
    assert out.to_target == b""
    assert close_of(client, bytes(out.to_client)) == (1003, TEXT_REJECT)
    assert stream.close_info is not None and not stream.close_info.by_client


def test_invalid_utf8_text_closes_1007_after_forwarding_the_valid_text_before_it() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    good = stream.receive(raw_frame(0x1, b"ok", fin=False))
    bad = stream.receive(raw_frame(0x0, b"\xff\xfe", fin=True))
    assert good.to_target == b"ok" and bad.to_target == b""
    assert close_of(client, bytes(bad.to_client)) == (1007, "Invalid UTF-8 in text frame")


def test_ping_is_answered_with_the_same_payload() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    out = stream.receive(client.send(Ping(payload=b"abc")))
    events = client_events(client, bytes(out.to_client))
    assert events == [Pong(payload=b"abc")]


def test_a_client_close_is_echoed_and_the_session_is_finished() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    out = stream.receive(client.send(CloseConnection(code=4001, reason="bye")))
    assert close_of(client, bytes(out.to_client)) == (4001, "bye")
    assert stream.finished
    assert stream.close_info is not None and stream.close_info.by_client
    assert (stream.close_info.code, stream.close_info.reason) == (4001, "bye")


def test_an_empty_close_is_echoed_empty() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    out = stream.receive(raw_frame(0x8, b""))
    assert bytes(out.to_client) == b"\x88\x00"


def test_eof_without_close_is_1006() -> None:
    _client, server = open_pair()
    stream = ClientStream(server)
    stream.receive(None)
    assert stream.finished
    assert stream.close_info is not None and stream.close_info.code == 1006


@pytest.mark.parametrize(
    ("wire", "code", "reason"),
    [
        (raw_frame(0x2, b"x", masked=False), 1002, "Procotol error: Frame not masked"),
        (raw_frame(0x0, b"x"), 1002, "Procotol error: Unexpected continuation frame"),
        (raw_frame(0x2, b"a", fin=False) + raw_frame(0x2, b"b"), 1002,
         "Procotol error: Unexpected new frame"),
        (raw_frame(0x3, b"x"), 1002, "Unsupported: Unknown opcode 0x03"),
        (raw_frame(0xB, b"x"), 1002, "Unsupported: Unknown opcode 0x0b"),
        (raw_frame(0x8, b"\x03\xe8\xff\xfe"), 1007, "Procotol error: Invalid UTF-8 in close"),
        (raw_frame(0x2, b"x", rsv=4), 1002, "Reserved bit set unexpectedly"),
        (raw_frame(0x9, b"x" * 126), 1002, "Control frame with payload len > 125"),
    ],
)
def test_protocol_errors_close_with_rfc_code_and_websockify_text(wire: bytes, code: int,
                                                                 reason: str) -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    out = stream.receive(wire)
    assert close_of(client, bytes(out.to_client)) == (code, reason)
    assert stream.close_info is not None and not stream.close_info.by_client
    # Later bytes are dropped, never forwarded (websockify forwarded them, §13.17).
    assert stream.receive(raw_frame(0x2, b"late")).to_target == b""


def test_a_binary_message_over_the_limit_closes_1009() -> None:
    client, server = open_pair()
    stream = ClientStream(server, max_message_size=10)
    ok = stream.receive(client.send(Message(data=b"x" * 10)))
    assert ok.to_target == b"x" * 10
    out = stream.receive(client.send(Message(data=b"y" * 11)))
    assert out.to_target == b""
    assert close_of(client, bytes(out.to_client)) == (1009, "Message too big")


def test_a_text_message_over_the_limit_closes_1009_counting_utf8_bytes() -> None:
    client, server = open_pair()
    stream = ClientStream(server, max_message_size=5)
    out = stream.receive(client.send(Message(data="\u00e9\u00e9\u00e9")))  # 6 bytes
    assert out.to_target == b""
    assert close_of(client, bytes(out.to_client))[0] == 1009


def test_base64_mode_decodes_client_text_and_encodes_target_data() -> None:
    client, server = open_pair()
    stream = ClientStream(server, mode=DataMode.BASE64, text_frames=TextFrames.REJECT)
    out = stream.receive(client.send(Message(data=base64.b64encode(b"\x00\xffhi").decode())))
    assert bytes(out.to_target) == b"\x00\xffhi"
    events = client_events(client, b"".join(stream.frame_data(b"\x01\x02")))
    assert events == [TextMessage(data="AQI=", frame_finished=True, message_finished=True)]


def test_invalid_base64_closes_1007() -> None:
    client, server = open_pair()
    stream = ClientStream(server, mode=DataMode.BASE64)
    out = stream.receive(client.send(Message(data="not base64!")))
    assert out.to_target == b"" and out.messages == 0
    assert close_of(client, bytes(out.to_client)) == (1007, "Invalid base64 data")


def test_base64_streams_in_whole_groups_across_fragments() -> None:
    client, server = open_pair()
    stream = ClientStream(server, mode=DataMode.BASE64)
    text = base64.b64encode(b"0123456789").decode()  # 16 characters, 2 of them padding
    first = stream.receive(client.send(Message(data=text[:6], message_finished=False)))
    assert first.to_target == b"012"  # the first 4-character group only
    rest = stream.receive(client.send(Message(data=text[6:], message_finished=True)))
    assert rest.to_target == b"3456789" and rest.messages == 1


def test_base64_data_after_padding_in_one_message_closes_1007() -> None:
    client, server = open_pair()
    stream = ClientStream(server, mode=DataMode.BASE64)
    first = stream.receive(client.send(Message(data="QQ==", message_finished=False)))
    assert first.to_target == b"A"
    out = stream.receive(client.send(Message(data="QQ==", message_finished=True)))
    assert out.to_target == b"" and out.messages == 0
    assert close_of(client, bytes(out.to_client)) == (1007, "Invalid base64 data")


def test_target_data_is_one_binary_frame_and_dropped_after_close() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    events = client_events(client, b"".join(stream.frame_data(b"abc")))
    assert events == [BytesMessage(data=b"abc", frame_finished=True, message_finished=True)]
    closing = stream.close(1000, "Target closed")
    assert close_of(client, closing) == (1000, "Target closed")
    assert b"".join(stream.frame_data(b"more")) == b""
    assert stream.ping() == b""
    assert stream.close(1011, "again") == b""
    assert stream.close_info is not None and stream.close_info.reason == "Target closed"


def test_data_after_our_close_is_discarded_and_the_reply_finishes_the_session() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    client_events(client, stream.close(1000, "Target closed"))
    out = stream.receive(raw_frame(0x2, b"late"))  # sent before the client saw our Close
    assert out.to_target == b""
    assert not stream.finished
    stream.receive(client.send(CloseConnection(code=1000).response()))
    assert stream.finished
    assert stream.close_info is not None and stream.close_info.reason == "Target closed"


def test_each_fragment_of_a_binary_message_goes_on_when_complete() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    first = stream.receive(client.send(Message(data=b"first-", message_finished=False)))
    assert first.target_chunks == [b"first-"] and first.messages == 0
    last = stream.receive(client.send(Message(data=b"last", message_finished=True)))
    assert last.target_chunks == [b"last"] and last.messages == 1


# -- --reply-frames ------------------------------------------------------------------------


def test_text_replies_hold_back_a_split_utf8_sequence_until_the_next_read() -> None:
    client, server = open_pair()
    stream = ClientStream(server, reply=ReplyFrames.TEXT)
    euro = "€".encode()  # 3 bytes
    first = b"".join(stream.frame_data(b"price " + euro[:2]))
    second = b"".join(stream.frame_data(euro[2:] + b" 5"))
    assert messages(client, first + second) == [("text", b"price "), ("text", euro + b" 5")]


def test_a_read_that_is_not_utf8_goes_as_binary_in_text_mode() -> None:
    client, server = open_pair()
    stream = ClientStream(server, reply=ReplyFrames.TEXT)
    data = b"".join(stream.frame_data(b"\xff\xfe raw"))
    assert messages(client, data) == [("binary", b"\xff\xfe raw")]


def test_a_held_back_fragment_is_flushed_as_binary_before_the_close() -> None:
    client, server = open_pair()
    stream = ClientStream(server, reply=ReplyFrames.TEXT)
    assert stream.frame_data("é".encode()[:1]) == ()
    data = stream.close(1000, "Target closed")
    events = client_events(client, data)
    assert isinstance(events[0], BytesMessage) and events[0].data == b"\xc3"
    assert isinstance(events[1], CloseConnection)


def test_mirror_answers_in_the_type_of_the_clients_last_message() -> None:
    client, server = open_pair()
    stream = ClientStream(server, reply=ReplyFrames.MIRROR)
    assert messages(client, b"".join(stream.frame_data(b"a"))) == [("binary", b"a")]
    stream.receive(client.send(TextMessage(data="hi")))
    assert messages(client, b"".join(stream.frame_data(b"b"))) == [("text", b"b")]
    stream.receive(client.send(BytesMessage(data=b"x")))
    assert messages(client, b"".join(stream.frame_data(b"c"))) == [("binary", b"c")]


def test_pongs_are_counted_for_the_heartbeat_timeout() -> None:
    client, server = open_pair()
    stream = ClientStream(server)
    stream.receive(client.send(Pong(payload=b"")))
    assert stream.pongs == 1
