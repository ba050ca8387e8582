"""The echo fast path (issue #19): ``proxy.protocol.fastframe`` and its use in ClientStream.

The reference is wsproto: every frame here is built by a wsproto client, and a stream
with the fast path switched off (``Reference``) must produce the same bytes, the same
message counts and the same replies for any split of the same input.
"""

from __future__ import annotations

import random

import pytest
from wsproto.events import BytesMessage, Ping, TextMessage

from proxy.protocol.fastframe import FrameBoundary, single_binary_frame
from proxy.protocol.stream import ClientStream, Output
from tests.support.wspair import open_pair, raw_frame


class Reference(ClientStream):
    """ClientStream with every read going through wsproto."""

    def _fast_binary(self, data: bytes, out: Output) -> bool:
        return False


class Counting(ClientStream):
    """ClientStream that counts the reads it handed to wsproto."""

    fed = 0

    def _feed(self, data: bytes | None, out: Output) -> None:
        self.fed += 1
        super()._feed(data, out)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 32, 125, 126, 127, 1000, 65535])
def test_one_masked_binary_frame_is_unmasked_as_wsproto_does(size: int) -> None:
    client, _server = open_pair()
    payload = random.Random(size).randbytes(size)
    assert single_binary_frame(client.send(BytesMessage(data=payload))) == payload


def test_anything_but_one_whole_binary_frame_is_left_to_wsproto() -> None:
    client, _server = open_pair()
    frame = client.send(BytesMessage(data=b"abc"))
    assert single_binary_frame(frame[:-1]) is None  # incomplete
    assert single_binary_frame(frame + frame) is None  # two frames
    assert single_binary_frame(client.send(TextMessage(data="abc"))) is None
    assert single_binary_frame(client.send(BytesMessage(data=b"ab", message_finished=False))) \
        is None  # no FIN
    assert single_binary_frame(client.send(BytesMessage(data=b"x" * 65536))) is None  # 64-bit
    assert single_binary_frame(raw_frame(2, b"abc", masked=False)) is None
    assert single_binary_frame(bytes([0xC2]) + frame[1:]) is None  # RSV1
    # A 16-bit length for 3 bytes is not minimal: wsproto must see and refuse it.
    assert single_binary_frame(b"\x82\xfe\x00\x03" + frame[2:]) is None


def test_the_boundary_is_clear_only_between_whole_frames_and_messages() -> None:
    client, _server = open_pair()
    wire = [client.send(BytesMessage(data=b"x" * 300)),
            client.send(BytesMessage(data=b"first", message_finished=False)),
            client.send(Ping(payload=b"p")),  # control frames may sit between fragments
            client.send(BytesMessage(data=b"last", message_finished=True))]
    boundary = FrameBoundary()
    for index, frame in enumerate(wire):
        for byte in frame[:-1]:
            boundary.feed(bytes([byte]))
            assert not boundary.clear
        boundary.feed(frame[-1:])
        # Clear after whole frames outside a fragmented message: the first and the last.
        assert boundary.clear == (index in (0, 3)), index


def test_a_single_frame_read_does_not_go_through_wsproto() -> None:
    client, server = open_pair()
    stream = Counting(server)
    out = stream.receive(client.send(BytesMessage(data=b"key event")))
    assert (out.target_chunks, out.messages, stream.fed) == ([b"key event"], 1, 0)
    # A frame split over two reads goes through wsproto, and the next whole one does not.
    wire = client.send(BytesMessage(data=b"split"))
    assert stream.receive(wire[:3]).to_target == b""
    assert stream.receive(wire[3:]).to_target == b"split"
    assert stream.fed == 2
    assert stream.receive(client.send(BytesMessage(data=b"next"))).to_target == b"next"
    assert stream.fed == 2


def test_over_the_size_limit_still_closes_1009() -> None:
    client, server = open_pair()
    stream = ClientStream(server, max_message_size=4)
    out = stream.receive(client.send(BytesMessage(data=b"too long")))
    assert out.to_target == b"" and stream.close_info is not None
    assert stream.close_info.code == 1009


@pytest.mark.parametrize("seed", range(60))
def test_any_split_of_any_frame_mix_gives_what_wsproto_gives(seed: int) -> None:
    rnd = random.Random(seed)
    client, fast_server = open_pair()
    wire = b""
    for _ in range(rnd.randint(1, 12)):
        kind = rnd.choice(["small", "small", "fragmented", "ping", "text", "large", "small",
                           "invalid" if rnd.random() < 0.2 else "close" if rnd.random() < 0.2
                           else "small"])
        if kind == "small":
            wire += client.send(BytesMessage(data=rnd.randbytes(rnd.randint(0, 140))))
        elif kind == "large":
            wire += client.send(BytesMessage(data=rnd.randbytes(rnd.randint(126, 3000))))
        elif kind == "fragmented":
            wire += client.send(BytesMessage(data=b"a" * 10, message_finished=False))
            if rnd.random() < 0.5:
                wire += client.send(Ping(payload=b"between"))
            wire += client.send(BytesMessage(data=b"b" * 10, message_finished=True))
        elif kind == "invalid":
            wire += raw_frame(2, b"unmasked", masked=False)  # 1002; later frames dropped
        elif kind == "close":
            wire += raw_frame(8, b"\x03\xe8bye")  # 1000 "bye"; data after it is dropped
        elif kind == "ping":
            wire += client.send(Ping(payload=rnd.randbytes(5)))
        else:
            wire += client.send(TextMessage(data="héllo"))
    cuts = sorted(rnd.sample(range(1, len(wire)), min(len(wire) - 1, rnd.randint(0, 6))))
    reads = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])]
    # The same frames, as a second client would mask them differently: build the
    # reference from the same bytes on its own OPEN server connection.
    _client, ref_server = open_pair()
    fast, ref = ClientStream(fast_server), Reference(ref_server)
    for read in reads:
        got, want = fast.receive(read), ref.receive(read)
        assert (got.to_target, got.messages, got.to_client) == \
            (want.to_target, want.messages, want.to_client), (seed, reads)
    assert fast.close_info == ref.close_info
