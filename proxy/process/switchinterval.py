"""The command's GIL switch interval: 0.5 s, and longer with more threads (issue #19).

A thread waiting for the GIL sleeps on a condition variable for at most the switch
interval, then wakes to ask the holder to drop it. One message on each of 9,000 idle
connections wakes 9,000 relay threads within ~0.1 s, so their waits start, and time
out, together: once per interval a herd of thousands of threads becomes runnable at
once, and the thread the GIL was just handed to waits for a CPU behind them. When the
interval is shorter than the time the herd takes to drain, the next herd comes before
the last is gone and the hand-offs stall. Of 9,000 echoes at once, only 470 to 6,901
came back within 20 s in runs at 0.005 to 0.1 s (the state is bistable: 0.05 s also
passed once), all of them in 2 to 4 s at 0.2 to 5 s, and with the fixed 0.5 s used
before (56 µs per thread) 3,203 came back in one bench run of eight (docs/benchmarks.rst,
"9,000 idle connections and the GIL switch interval").

So the interval grows with the threads that may wait for the GIL: ``PER_THREAD``
(nine times that failing 56 µs) for each, never below ``FLOOR`` (echo latency under load
was no different at 0.005, 0.05 and 0.5 s) and never above ``CEILING``. The cost of a
long interval: a thread that runs Python without a blocking call keeps the GIL that long
before a waiter may take it. Relay and handshake threads release it at every socket call.
"""

from __future__ import annotations

import sys
import threading

#: The interval up to 1,000 threads (CPython's default is 0.005 s).
FLOOR = 0.5  # seconds
#: The interval per thread above that: 4.5 s for 9,000 threads.
PER_THREAD = 0.0005  # seconds
#: The longest interval (20,000 threads): how long CPU-bound work may keep the GIL.
CEILING = 10.0  # seconds


def interval_for(threads: int) -> float:
    """The switch interval for a process with ``threads`` Python threads."""
    return min(CEILING, max(FLOOR, threads * PER_THREAD))


def adjust() -> float:
    """Set the interval for the threads alive now and return it.

    Cheap (a count and a store): the accept loop calls it after every wake-up, so the
    interval follows the sessions as they open and close.
    """
    interval = interval_for(threading.active_count())
    sys.setswitchinterval(interval)
    return interval
