"""proxy.protocol.forwarded: the client address behind a --trusted-proxy."""

from __future__ import annotations

import pytest

from proxy.protocol import forwarded
from tests.support.headers import headers


TRUSTED = forwarded.parse_trusted("127.0.0.1, 10.0.0.0/8 ,::1")


@pytest.mark.parametrize(
    ("peer", "lines", "expected"),
    [
        (("127.0.0.1", 5), ["X-Forwarded-For: 198.51.100.7"], ("198.51.100.7", 0)),
        (("127.0.0.1", 5), ["X-Forwarded-For: 6.6.6.6, 198.51.100.7, 10.1.1.1"],
         ("198.51.100.7", 0)),
        (("127.0.0.1", 5), ["X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 198.51.100.7:4321"],
         ("198.51.100.7", 4321)),
        (("127.0.0.1", 5), ['Forwarded: for="[2001:db8::1]:80";proto=http, for=10.2.2.2'],
         ("2001:db8::1", 80)),
        (("127.0.0.1", 5), ["X-Forwarded-For: unknown"], ("127.0.0.1", 5)),
        (("127.0.0.1", 5), [], ("127.0.0.1", 5)),
        (("192.0.2.9", 5), ["X-Forwarded-For: 198.51.100.7"], ("192.0.2.9", 5)),
    ],
)
def test_forwarded_headers_count_only_from_trusted_proxies(
        peer: tuple[str, int], lines: list[str], expected: tuple[str, int]) -> None:
    assert forwarded.client_address(peer, headers(*lines), TRUSTED) == expected


def test_a_bad_trusted_proxy_list_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid address"):
        forwarded.parse_trusted("127.0.0.1,example.com")
