"""The echo fast path's frame arithmetic (issue #19). Pure: bytes in, bytes out.

Most client reads in an interactive session (a noVNC key or mouse event) are one
complete, small, masked binary frame. Through wsproto each costs a Buffer, a header
parse, a Frame and a BytesMessage: about a hundred Python calls. ``single_binary_frame``
recognises exactly that read and unmasks it; ``FrameBoundary`` follows the frame lengths
of everything else (which still goes to wsproto, the parser of record) so that the fast
path is only taken where wsproto holds no bytes and no message is in progress: there a
complete FIN data frame leaves wsproto's state as it was (RFC 6455 §5.2, §5.4).
"""

from __future__ import annotations

import struct

_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")
_FIN_BINARY = 0x82  # FIN, no RSV bits, opcode 2
_MASK = 0x80


def frame_header(first: int, length: int) -> bytes:
    """The header of an unmasked server frame (RFC 6455 §5.2): 2, 4 or 10 bytes."""
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return _LEN16.pack(first, 126, length)
    return _LEN64.pack(first, 127, length)


def single_binary_frame(data: bytes) -> bytes | None:
    """The unmasked payload if ``data`` is exactly one masked FIN binary frame of at most
    65,535 bytes with minimal length encoding and no RSV bits; None for anything else."""
    if len(data) < 6 or data[0] != _FIN_BINARY or not data[1] & _MASK:
        return None
    length = data[1] & 0x7F
    start = 6
    if length == 126:
        if len(data) < 8:
            return None
        length = int.from_bytes(data[2:4], "big")
        if length < 126:
            return None  # not minimal: wsproto refuses it, so it must see it (§5.2)
        start = 8
    elif length == 127:
        return None
    if len(data) != start + length:
        return None
    key = data[start - 4:start]
    if not length:
        return b""
    mask = (key * (length // 4 + 1))[:length]
    value = int.from_bytes(data[start:], "big") ^ int.from_bytes(mask, "big")
    return value.to_bytes(length, "big")


class FrameBoundary:
    """Follows frame boundaries in the client bytes handed to wsproto.

    ``clear`` is True when those bytes ended exactly at the end of a frame and no data
    message is open (its last data frame had FIN). Only lengths and flags are read: a
    malformed frame makes wsproto fail the connection, which ends the fast path anyway.
    """

    __slots__ = ("_header", "_skip", "_open")

    def __init__(self) -> None:
        self._header = b""  # an incomplete frame header
        self._skip = 0  # payload bytes of the current frame still to come
        self._open = False  # a fragmented data message has begun and not ended

    @property
    def clear(self) -> bool:
        return not self._skip and not self._header and not self._open

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._skip:
                taken = min(self._skip, len(data) - pos)
                self._skip -= taken
                pos += taken
                continue
            head = self._header + data[pos:pos + 14]
            size = _header_size(head)
            if size is None or len(head) < size:
                self._header = head  # at most 14 bytes
                return
            pos += size - len(self._header)
            self._header = b""
            self._on_header(head)

    def _on_header(self, head: bytes) -> None:
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(head[2:4], "big")
        elif length == 127:
            length = int.from_bytes(head[2:10], "big")
        self._skip = length
        opcode = head[0] & 0x0F
        if opcode < 8:  # data or continuation; control frames sit between fragments
            self._open = not head[0] & 0x80


def _header_size(head: bytes) -> int | None:
    """The frame header's full size (with the mask key), or None before byte 2."""
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    size = 2 + (2 if length == 126 else 8 if length == 127 else 0)
    return size + (4 if head[1] & _MASK else 0)
