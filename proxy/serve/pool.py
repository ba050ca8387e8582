"""``HandlerPool``: already-started connection threads fed through a queue (issue #19).

Starting a thread per connection cost the accept loop a GIL hand-off each time:
``Thread.start()`` waits until the new thread signals that it runs, and a profile at ~600
connections/s had half of the accept thread's samples in that wait. Here a connection goes
to a parked thread when one is idle (a queue append and a notify); a thread is started only
when every thread is busy, so the pool grows on demand. It needs no limit of its own: a
thread is busy only with a counted connection and ``--max-connections`` bounds those
(``Connections.begin`` in ``ProxyServer.process_request``). A thread idle for
``idle_timeout`` seconds exits, so a burst's threads do not stay.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

#: Seconds an idle thread waits for the next connection before it exits.
IDLE_TIMEOUT = 10.0

Job = tuple[Any, Any]  # (request, client_address)


class PoolClosed(RuntimeError):
    """``submit`` after ``close``: the job was not queued."""


class HandlerPool:
    """Run ``handle(request, client_address)`` for each submitted job on a pool thread."""

    def __init__(self, handle: Callable[[Any, Any], None], name: str = "handler",
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self._handle = handle
        self._name = name
        self.idle_timeout = idle_timeout
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[Job] = deque()
        self._idle = 0  # threads waiting in _next_job
        self._threads = 0  # threads started and not yet exited
        self._closed = False
        self._serial = 0

    @property
    def threads(self) -> int:
        """Threads alive in the pool, busy or idle."""
        return self._threads

    @property
    def idle(self) -> int:
        """Threads parked, waiting for a connection."""
        return self._idle

    def submit(self, job: Job) -> None:
        """Queue ``job``; start a thread unless enough are idle to take every queued job.

        Raises:
            PoolClosed: the pool is closed; the job was not queued.
            RuntimeError: no thread could be started (a thread limit); the job is still
                queued, and the caller takes it back with ``withdraw``. So does the caller
                of a signal handler's exception raised in here.
        """
        with self._cond:
            if self._closed:
                raise PoolClosed("handler pool closed")
            self._jobs.append(job)
            if self._idle >= len(self._jobs):
                self._cond.notify()
                return
            self._threads += 1
            self._serial += 1
            name = f"{self._name}-{self._serial}"
        # Daemon: live connections must not keep the process alive after exit.
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # not started (a thread limit); a signal in the wait is not this
            with self._cond:
                self._threads -= 1
            raise

    def withdraw(self, job: Job) -> bool:
        """Take ``job`` back if no thread took it yet (True): the caller handles it."""
        with self._cond:
            try:
                self._jobs.remove(job)
            except ValueError:
                return False
            return True

    def close(self) -> None:
        """Idle threads exit now, busy ones after their connection; no new jobs."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            self._handle(*job)
            del job  # the socket must not stay referenced while parked

    def _next_job(self) -> Job | None:
        """The next queued job, or None when this thread should exit (idle or closed)."""
        with self._cond:
            while not self._jobs:
                if self._closed:
                    self._threads -= 1
                    return None
                self._idle += 1
                try:
                    notified = self._cond.wait(self.idle_timeout)
                finally:
                    self._idle -= 1
                if not notified and not self._jobs:
                    self._threads -= 1
                    return None
            return self._jobs.popleft()
