"""permessage-deflate (RFC 7692) for ``--compression``: wsproto's extension, made safe.

Pure. ``BoundedDeflate`` changes three things in wsproto's ``PerMessageDeflate``:

* Negotiation follows RFC 7692 §5: the first acceptable offer wins (wsproto lets every
  offer overwrite the parameters of the previous one), and an offer with an unknown,
  repeated or out-of-range parameter is declined, not half-applied.
* Inflation is bounded: a message that inflates past ``max_message_size`` closes 1009
  before it is held in memory (wsproto inflates without a limit: a 64 KiB read can
  become 64 MiB, a "zip bomb").
* ``server_max_window_bits=8`` is accepted although zlib cannot deflate with a 256-byte
  window: we compress with Huffman coding only (no back-references at all), which any
  window size can inflate.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

_NO_VALUE = ("server_no_context_takeover", "client_no_context_takeover")
_BITS = ("server_max_window_bits", "client_max_window_bits")


def parse_offer(offer: str) -> dict[str, int | None] | None:
    """The parameters of one permessage-deflate offer; None if it must be declined."""
    params: dict[str, int | None] = {}
    for item in offer.split(";")[1:]:
        name, eq, value = (part.strip() for part in item.partition("="))
        value = value.strip('"')
        if name in params or name not in _NO_VALUE + _BITS:
            return None
        if name in _NO_VALUE:
            if eq:
                return None
            params[name] = None
        elif not eq:
            if name == "server_max_window_bits":
                return None  # RFC 7692 §7.1.2.1: a value is required
            params[name] = None
        elif value.isdigit() and 8 <= int(value) <= 15 and value == str(int(value)):
            params[name] = int(value)
        else:
            return None
    return params


class BoundedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate with RFC-exact negotiation and bounded inflation."""

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self._max_message_size = max_message_size
        self._inflated = 0  # bytes of the current message inflated so far
        self._huffman_only = False

    def accept(self, offer: str) -> bool | None | str:
        if self._enabled:
            return None  # one offer only: wsproto would let a later one overwrite it
        params = parse_offer(offer)
        if params is None:
            return None
        response = []
        if "server_no_context_takeover" in params:
            self.server_no_context_takeover = True
            response.append("server_no_context_takeover")
        if "client_no_context_takeover" in params:
            self.client_no_context_takeover = True
            response.append("client_no_context_takeover")
        bits = params.get("server_max_window_bits")
        if bits is not None:
            self._huffman_only = bits == 8
            self.server_max_window_bits = max(bits, 9)
            response.append(f"server_max_window_bits={bits}")
        # client_max_window_bits: we do not restrict the client; inflating with the
        # default 15-bit window reads any smaller one.
        self._enabled = True
        return "; ".join(response)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes,
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        room = self._max_message_size - self._inflated
        try:
            out = self._decompressor.decompress(bytes(data), room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room or self._decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        self._inflated += len(out)
        return out

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool,
    ) -> bytes | CloseReason | None:
        if fin:
            self._inflated = 0
        return super().frame_inbound_complete(proto, fin)

    def frame_outbound(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits, data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        if self._huffman_only and self._compressor is None and opcode is not Opcode.CONTINUATION:
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -9, 8, zlib.Z_HUFFMAN_ONLY)
        return super().frame_outbound(proto, opcode, rsv, data, fin)
