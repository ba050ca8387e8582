"""Issue #15 §2 against the real command: no message is held whole, at CI size.

The proxy's RSS once the hostile clients are connected and stalled, minus its RSS before
they connected, must stay below 64 MiB. Full sizes (16 x 63 MiB of unfinished text,
12 x 60 MiB bombs) run from ``scripts/memory-bound``; figures in docs/reliability.rst.
"""

from __future__ import annotations

import pytest

from tests.conftest import TIMEOUT, scaled
from tests.integration.conftest import StartProxy
from tests.support.backends import NeverReadBackend, SinkBackend
from tests.support.bounds import Clients, deflate_bombs, rss, settle, unfinished_text
from tests.support.hostile import ProcessProbe
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIMIT = 64 << 20  # bytes of RSS growth (the bound for both cases)
COMPRESSION = "Sec-WebSocket-Extensions: permessage-deflate\r\n"


def test_unfinished_text_messages_stream_through_instead_of_piling_up(
        start_proxy: StartProxy) -> None:
    """16 clients x 8 MiB of one unfinished text message: 128 MiB if it were held."""
    with SinkBackend(keep_data=False) as target:
        proxy = start_proxy(target.port)
        assert proxy.proc is not None
        ProcessProbe(proxy.proc.pid).idle(proxy.port, TIMEOUT)  # wait_port's probe is gone
        before = rss(proxy.proc.pid)
        with Clients(proxy.port, 16) as clients:
            unfinished_text(clients, 8 << 20, time_limit=60)
            want = 16 * (8 << 20) - 16 * (512 << 10)  # less what may wait in the buffers
            wait_for(lambda: sum(rec.count for rec in target.wait_connections(16)) >= want,
                     f"{want} bytes at the target", scaled(30))
            grown = settle(proxy.proc.pid) - before
        assert grown < LIMIT, f"RSS grew by {grown >> 20} MiB"


def test_compressed_messages_are_inflated_only_as_the_target_takes_them(
        start_proxy: StartProxy) -> None:
    """12 clients x one 61 KB message inflating to 60 MiB, to a target that never reads."""
    with NeverReadBackend() as target:
        proxy = start_proxy(target.port, "--compression")
        assert proxy.proc is not None
        ProcessProbe(proxy.proc.pid).idle(proxy.port, TIMEOUT)  # wait_port's probe is gone
        before = rss(proxy.proc.pid)
        with Clients(proxy.port, 12, extra=COMPRESSION) as clients:
            wire = deflate_bombs(clients, 60 << 20)
            assert wire < 64 * 1024
            target.wait_connections(12)
            grown = settle(proxy.proc.pid, seconds=1.5) - before
        assert grown < LIMIT, f"RSS grew by {grown >> 20} MiB"
