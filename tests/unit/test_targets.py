"""``proxy.transport.targets.open_target``: numeric targets skip the lookup (issue #19).

Whether getaddrinfo() ran is seen through its audit event ("socket.getaddrinfo", PEP 578);
the connections are real, to listeners on loopback.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from proxy.errors import TargetError
from proxy.transport.targets import numeric_family, open_target
from tests.conftest import TIMEOUT

_lookups: list[tuple[Any, ...]] = []
_watching = threading.local()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.getaddrinfo" and getattr(_watching, "on", False):
        _lookups.append(args)


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only when asked


@contextmanager
def lookups() -> Iterator[list[tuple[Any, ...]]]:
    """The getaddrinfo() calls made by this thread inside the block."""
    _lookups.clear()
    _watching.on = True
    try:
        yield _lookups
    finally:
        _watching.on = False


@contextmanager
def listener(family: int, host: str) -> Iterator[int]:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"),
                                         (socket.AF_INET6, "::1")])
def test_a_numeric_target_is_connected_without_a_lookup(family: int, host: str) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    with listener(family, host) as port, lookups() as calls:
        with open_target(host, port, TIMEOUT) as sock:
            assert sock.getpeername()[:2] == (host, port)
            assert sock.family == family
            assert sock.gettimeout() is None  # blocking, as from create_connection
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert calls == []


def test_a_host_name_is_still_resolved() -> None:
    with listener(socket.AF_INET, "127.0.0.1") as port, lookups() as calls:
        with open_target("localhost", port, TIMEOUT) as sock:
            assert sock.getpeername()[1] == port
    assert [args[0] for args in calls] == ["localhost"]


def test_a_refused_numeric_target_raises_the_same_error_as_before() -> None:
    with listener(socket.AF_INET, "127.0.0.1") as port:
        pass  # closed: nothing listens on the port now
    with pytest.raises(TargetError) as numeric:
        open_target("127.0.0.1", port, TIMEOUT)
    with pytest.raises(OSError) as looked_up:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    assert str(numeric.value) == str(looked_up.value) == "[Errno 111] Connection refused"


def test_only_address_literals_count_as_numeric() -> None:
    assert numeric_family("10.0.0.1") == socket.AF_INET
    assert numeric_family("::1") == socket.AF_INET6
    assert numeric_family("localhost") is None
    assert numeric_family("127.1") is None  # getaddrinfo() takes it; inet_pton() does not
    assert numeric_family("") is None
