"""``proxy.serve.pool.HandlerPool`` (issue #19): parked threads take the next connection.

Real threads and real waits (each bounded by TIMEOUT); the jobs are plain objects, the
pool never looks inside them.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from proxy.serve.pool import HandlerPool, PoolClosed
from tests.conftest import TIMEOUT
from tests.support.inprocess import running, wait_for
from tests.support.wsclient import raw_http


class Recorder:
    """The pool's handle: notes which thread ran each job; blocks while ``gate`` is clear."""

    def __init__(self) -> None:
        self.ran: list[tuple[Any, str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def __call__(self, request: Any, client_address: Any) -> None:
        assert self.gate.wait(TIMEOUT)
        with self.lock:
            self.ran.append((request, threading.current_thread().name))

    def count(self) -> int | None:
        with self.lock:
            return len(self.ran) or None


def test_a_parked_thread_takes_the_next_job() -> None:
    """No thread start per connection once one is parked: one thread ran both jobs."""
    handle = Recorder()
    pool = HandlerPool(handle)
    try:
        pool.submit(("first", None))
        wait_for(lambda: pool.idle == 1 or None, "the thread to park")
        pool.submit(("second", None))
        wait_for(lambda: len(handle.ran) == 2 or None, "both jobs")
        assert [job for job, _ in handle.ran] == ["first", "second"]
        assert handle.ran[0][1] == handle.ran[1][1] == "handler-1"
        assert pool.threads == 1
    finally:
        pool.close()


def test_the_pool_grows_while_every_thread_is_busy() -> None:
    handle = Recorder()
    handle.gate.clear()  # every job blocks until released
    pool = HandlerPool(handle)
    try:
        for n in range(3):
            pool.submit((n, None))
        assert pool.threads == 3  # one started per job that found no idle thread
        handle.gate.set()
        wait_for(lambda: len(handle.ran) == 3 or None, "the three jobs")
        assert sorted(job for job, _ in handle.ran) == [0, 1, 2]
        assert len({name for _, name in handle.ran}) == 3
    finally:
        pool.close()


def test_an_idle_thread_exits_after_the_idle_timeout() -> None:
    handle = Recorder()
    pool = HandlerPool(handle, idle_timeout=0.05)
    try:
        pool.submit(("job", None))
        wait_for(lambda: handle.count(), "the job")
        wait_for(lambda: pool.threads == 0 or None, "the idle thread to exit")
        pool.submit(("later", None))  # a new thread, then
        wait_for(lambda: len(handle.ran) == 2 or None, "the later job")
        assert handle.ran[1][1] == "handler-2"
    finally:
        pool.close()


def test_close_ends_parked_threads_and_refuses_new_jobs() -> None:
    handle = Recorder()
    pool = HandlerPool(handle, name="closing")
    pool.submit(("job", None))
    wait_for(lambda: pool.idle == 1 or None, "the thread to park")
    pool.close()
    wait_for(lambda: pool.threads == 0 or None, "the parked thread to exit")
    assert not [t for t in threading.enumerate() if t.name.startswith("closing-")]
    with pytest.raises(PoolClosed):
        pool.submit(("refused", None))
    assert not pool.withdraw(("refused", None))  # never queued


def test_an_embedded_server_reuses_its_handler_thread_and_ends_it_on_close() -> None:
    """ProxyServer hands connections to its pool; server_close() ends the parked thread,
    so an embedding application keeps no thread after closing the server (README)."""
    with running() as server:
        for _ in range(2):
            # A plain GET without --web: answered (405) and closed, no target needed.
            response = raw_http(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert response.status == 405
            wait_for(lambda: server.live_connections == 0 or None, "the connection to end")
            wait_for(lambda: server.pool.idle == 1 or None, "the thread to park")
        assert server.pool.threads == 1
        pool = server.pool
    wait_for(lambda: pool.threads == 0 or None, "the parked thread to exit")
