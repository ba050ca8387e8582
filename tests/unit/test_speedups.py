"""proxy.protocol.speedups: the numpy unmasking agrees with wsproto's masker, chunk by chunk."""

from __future__ import annotations

import os

import pytest
from wsproto import frame_protocol

from proxy.protocol import speedups

np = pytest.importorskip("numpy")


@pytest.mark.parametrize("sizes", [(1,), (3, 5, 7), (4, 4), (65536,), (2, 65535, 1, 9), (0, 13)])
def test_numpy_masker_matches_wsproto_across_chunks(sizes: tuple[int, ...]) -> None:
    """The key rotates across calls: a frame's payload arrives in pieces of any size."""
    key = os.urandom(4)
    ours = speedups._numpy_masker(np)(key)
    theirs = speedups._ORIGINAL(key)
    for size in sizes:
        chunk = bytearray(os.urandom(size))
        assert bytes(ours.process(chunk)) == bytes(theirs.process(chunk))


def test_install_swaps_wsproto_masker_and_a_client_frame_still_parses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frame_protocol, "XorMaskerSimple", speedups._ORIGINAL)
    monkeypatch.delenv("WEBSOCKIFY_NO_SPEEDUPS", raising=False)
    assert speedups.install() is True
    assert frame_protocol.XorMaskerSimple is not speedups._ORIGINAL
    from tests.support.wspair import open_pair
    from wsproto.events import BytesMessage, Message

    client, server = open_pair()
    payload = os.urandom(100_003)
    server.receive_data(client.send(Message(data=payload)))
    received = b"".join(bytes(e.data) for e in server.events() if isinstance(e, BytesMessage))
    assert received == payload


def test_the_environment_can_keep_wsproto_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frame_protocol, "XorMaskerSimple", speedups._ORIGINAL)
    monkeypatch.setenv("WEBSOCKIFY_NO_SPEEDUPS", "1")
    assert speedups.install() is False
    assert frame_protocol.XorMaskerSimple is speedups._ORIGINAL
