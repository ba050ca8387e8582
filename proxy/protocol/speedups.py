"""Optional accelerator: unmask client frames with numpy (extra ``speedups``).

wsproto unmasks with ``bytes.translate`` on four strided slices, about 0.5 GB/s, which
bounds the client→target direction (notes §2.5-2.6; issue #8). websockify uses numpy for
the same job. When numpy is importable, ``install()`` swaps wsproto's masker class for
one that XORs with numpy; the result is checked against wsproto's own masker first, and
nothing changes when numpy is missing or the check fails. Parsing and validation stay
wsproto's: only the XOR is replaced.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from wsproto import frame_protocol

log = logging.getLogger(__name__)

_ORIGINAL = frame_protocol.XorMaskerSimple


def _numpy_masker(np: Any) -> type:
    class NumpyMasker:
        """Same contract as wsproto's ``XorMaskerSimple``: the key rotates across calls."""

        def __init__(self, masking_key: bytes | bytearray) -> None:
            self._keys = bytes(masking_key) * 2  # the key at every rotation: _keys[i:i + 4]
            self._offset = 0

        def process(self, data: bytes | bytearray) -> bytearray:
            out = bytearray(data)  # wsproto's masker copies too
            size = len(out)
            key = self._keys[self._offset:self._offset + 4]
            whole = size // 4
            if whole:
                # XOR four bytes at a time: the key as one 32-bit word in native order.
                words = np.frombuffer(out, dtype=np.uint32, count=whole)
                np.bitwise_xor(words, np.frombuffer(key, dtype=np.uint32)[0], out=words)
            for index in range(whole * 4, size):
                out[index] ^= key[index % 4]
            self._offset = (self._offset + size) % 4
            return out

    return NumpyMasker


def install() -> bool:
    """Use numpy for unmasking if it is installed and agrees with wsproto; True if so.

    ``WEBSOCKIFY_NO_SPEEDUPS=1`` keeps wsproto's pure-Python masker.
    """
    if os.environ.get("WEBSOCKIFY_NO_SPEEDUPS"):
        return False
    try:
        import numpy as np  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError:
        return False
    masker = _numpy_masker(np)
    sample, key = bytes(range(256)) * 3 + b"odd", b"\x01\x80\xfe\x37"
    ours, theirs = masker(key), _ORIGINAL(key)
    for start, end in ((0, 5), (5, 100), (100, len(sample))):
        chunk = bytearray(sample[start:end])
        if bytes(ours.process(chunk)) != bytes(theirs.process(chunk)):
            log.warning("numpy unmasking disagrees with wsproto's: not used")
            return False
    setattr(frame_protocol, "XorMaskerSimple", masker)  # looked up at each frame header

    return True
