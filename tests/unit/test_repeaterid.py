"""The repeater ID block (issue #20 §1): what x11vnc and noVNC send, what is refused."""

from __future__ import annotations

import pytest

from proxy.protocol.repeaterid import BLOCK_SIZE, BadRepeaterId, make_block, parse_block, valid_id


def test_x11vnc_block_parses() -> None:
    block = b"ID:1234" + b"\0" * (BLOCK_SIZE - 7)
    assert parse_block(block) == "1234"


def test_bytes_after_the_first_nul_are_ignored() -> None:
    block = (b"ID:host-7\0garbage").ljust(BLOCK_SIZE, b"x")
    assert parse_block(block) == "host-7"


def test_make_block_round_trips() -> None:
    block = make_block("desk.42")
    assert len(block) == BLOCK_SIZE and block.startswith(b"ID:desk.42\0")
    assert parse_block(block) == "desk.42"


def test_longest_id_fills_the_block() -> None:
    longest = "9" * (BLOCK_SIZE - 3)
    assert parse_block(make_block(longest)) == longest


@pytest.mark.parametrize(("block", "message"), [
    (b"ID:12", "short ID block (5 of 250 bytes)"),
    (b"", "short ID block (0 of 250 bytes)"),
    (b"RFB 003.008\n".ljust(BLOCK_SIZE, b"\0"), "no ID: prefix"),
    (b"ID:".ljust(BLOCK_SIZE, b"\0"), "invalid ID ''"),
    (b"ID:a b".ljust(BLOCK_SIZE, b"\0"), "invalid ID 'a b'"),
    (b"ID:x\ny".ljust(BLOCK_SIZE, b"\0"), "invalid ID 'x\\ny'"),
])
def test_bad_blocks_say_why(block: bytes, message: str) -> None:
    with pytest.raises(BadRepeaterId) as info:
        parse_block(block)
    assert str(info.value) == message


def test_valid_id() -> None:
    assert valid_id("1234") and valid_id("a_b-c.d~e")
    assert not valid_id("") and not valid_id("a/b") and not valid_id("é")
    assert not valid_id("1" * (BLOCK_SIZE - 2))
    with pytest.raises(BadRepeaterId):
        make_block("no spaces")
