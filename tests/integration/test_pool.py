"""The real command hands connections to parked handler threads (issue #19).

Seen from outside through /proc/PID/task: the thread that served one connection stays
after it and serves the next, instead of a thread started (and a Thread.start() hand-off
paid in the accept loop) per connection.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest

from tests.integration.conftest import StartProxy
from tests.support.backends import EchoBackend
from tests.support.hostile import ProcessProbe
from tests.support.waiting import wait_for
from tests.support.wsclient import WSClient

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")]


def tasks(pid: int) -> set[int]:
    return {int(name) for name in os.listdir(f"/proc/{pid}/task")}


def echo_session(port: int, pid: int, payload: bytes,
                 during: Callable[[], None] = lambda: None) -> None:
    with WSClient.connect(port) as client:
        client.send_binary(payload)
        assert client.recv_bytes(len(payload)) == payload
        during()
        client.close(1000)
        client.recv_close()
        # EOF: the proxy closed the socket; its thread then counts the connection down
        # and parks (in futex), after which only the accept loop is busy.
        assert client.wait_eof() == b""
    wait_for(lambda: ProcessProbe(pid).threads() <= 1 or None, "the handler thread to park")


def test_the_next_connection_runs_on_a_parked_thread(start_proxy: StartProxy,
                                                     echo_backend: EchoBackend) -> None:
    proxy = start_proxy(echo_backend.port)
    assert proxy.proc is not None
    pid = proxy.proc.pid
    echo_session(proxy.port, pid, b"one")
    after_one = tasks(pid)  # the first session's thread, parked (it used to exit)

    def no_new_thread() -> None:
        # While the second session relays, no thread was started for it.
        assert tasks(pid) - after_one == set()

    echo_session(proxy.port, pid, b"two", no_new_thread)
    echo_session(proxy.port, pid, b"three", no_new_thread)
