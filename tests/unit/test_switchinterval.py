"""proxy.process.switchinterval: the GIL switch interval grows with the threads (#19)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from proxy.process import switchinterval
from proxy.process.runner import _Ticker
from proxy.serve.server import ProxyServer
from proxy.settings import Settings

#: Of 9,000 echoes at once, 3,203 came back in 20 s in one bench run of eight at a fixed
#: 0.5 s: 56 µs of interval per waiting thread (docs/benchmarks.rst).
FAILED_PER_THREAD = 0.5 / 9000


@contextmanager
def parked_threads(count: int) -> Iterator[None]:
    """``count`` more live threads, parked on an event (as idle relays are, in poll)."""
    release = threading.Event()
    threads = [threading.Thread(target=release.wait, args=(30,), daemon=True)
               for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        release.set()
        for thread in threads:
            thread.join(5)


@contextmanager
def restored_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_the_interval_stays_far_above_the_failing_one_per_thread() -> None:
    """The fixed 0.5 s let 9,000 simultaneous echoes stall; up to 20,000 threads (two fds
    per connection under a 40,000-fd limit) the interval stays 9 times above that."""
    for threads in (1_000, 5_000, 9_000, 15_000, 20_000):
        assert switchinterval.interval_for(threads) >= 9 * FAILED_PER_THREAD * threads
    assert switchinterval.interval_for(9_000) == 4.5


def test_few_threads_keep_half_a_second_and_many_stop_at_the_ceiling() -> None:
    assert switchinterval.interval_for(1) == 0.5
    assert switchinterval.interval_for(1_000) == 0.5
    assert switchinterval.interval_for(100_000) == 10.0


def test_adjust_follows_the_live_threads() -> None:
    with restored_interval():
        with parked_threads(1_500):
            interval = switchinterval.adjust()
            assert interval == switchinterval.interval_for(threading.active_count())
            assert interval >= 0.75
            assert abs(sys.getswitchinterval() - interval) < 1e-6
        assert switchinterval.adjust() == 0.5
        assert abs(sys.getswitchinterval() - 0.5) < 1e-6


def test_the_accept_loop_adjusts_it_after_each_wake_up() -> None:
    """The command's accept loop (runner._Ticker) keeps it in step as sessions come and go."""
    server = ProxyServer(Settings(listen_host="127.0.0.1", listen_port=0,
                                  target_host="127.0.0.1", target_port=9))
    try:
        with restored_interval():
            sys.setswitchinterval(0.005)
            tick = _Ticker(server, None)
            with parked_threads(1_500):
                tick()
                assert sys.getswitchinterval() >= 0.75
            tick()
            assert abs(sys.getswitchinterval() - 0.5) < 1e-6
    finally:
        server.server_close()
