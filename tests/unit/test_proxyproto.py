"""proxy.protocol.proxyproto: the PROXY v1 header for the target (--target-proxy-protocol)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.protocol import proxyproto


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [
        (("192.0.2.1", 5000), ("127.0.0.1", 6080), b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 6080\r\n"),
        (("::1", 1), ("::1", 2), b"PROXY TCP6 ::1 ::1 1 2\r\n"),
        (("10.0.0.1", 3), ("::1", 4), b"PROXY TCP6 ::ffff:10.0.0.1 ::1 3 4\r\n"),
        (None, ("::1", 4), b"PROXY UNKNOWN\r\n"),
        (("/run/x.sock", 0), ("::1", 4), b"PROXY UNKNOWN\r\n"),
    ],
)
def test_proxy_v1_header_bytes(source: Any, destination: Any, expected: bytes) -> None:
    assert proxyproto.v1_header(source, destination) == expected
