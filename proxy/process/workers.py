"""``--workers N``: N processes, each a threaded server, on one listening socket.

Beyond websockify (one process per connection, spec §11): the parent binds, prints the
one banner, forks N workers and supervises them. Each worker runs the same accept loop
and relays as a single process would (``proxy.process.runner``).

Why one inherited listening socket and not a SO_REUSEPORT socket per worker: it works
for every listener (TCP, ``--unix-listen``, systemd's ``--listen-fd``), a restarted
worker loses no queued connection (the kernel drops the queue of a closed SO_REUSEPORT
socket), and whichever worker is free takes the next connection instead of a hash of the
client's port choosing one.

Signals: SIGTERM and SIGINT reach the parent, which forwards each one to the workers as
``WORKER_STOP`` (each closes its sessions with 1001, as one process does; a second one ends
a ``--drain-timeout`` at once). Workers ignore SIGTERM and SIGINT themselves: systemd
(KillMode=control-group) and a terminal's Ctrl-C signal the whole group, and a worker
getting the stop twice would cut its drain short. SIGHUP is forwarded (each reloads). A
worker whose parent dies gets ``WORKER_STOP`` (PR_SET_PDEATHSIG), so none outlives a
killed parent. A worker that dies other than by a stop (or its own ``--timeout``) is
restarted, unless it died within ``RESTART_MIN`` seconds of its start: then the parent
stops the rest and exits 1, as a crash loop would only repeat.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from proxy.process import sdnotify, startsignals

log = logging.getLogger("proxy.workers")

#: A worker that exits abnormally sooner than this after its start is not restarted.
RESTART_MIN = 1.0  # seconds
#: How often the parent checks its workers.
POLL = 0.1  # seconds
#: After the stop, workers still running this long past their own deadline are killed.
KILL_AFTER = 5.0  # seconds
#: The signals the parent handles (blocked while it forks).
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: The signal the parent stops workers with (see the module docstring).
WORKER_STOP = signal.SIGUSR2
#: Blocked across fork(): the parent's signals, and the worker's stop until it is held.
_FORK_MASK = (*_HANDLED, WORKER_STOP)
#: Linux prctl option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """``WORKER_STOP`` to this worker when the parent dies, even by SIGKILL (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(WORKER_STOP), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's stop still reaches us
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), WORKER_STOP)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # a closed stream at exit; nothing left to report it to
            pass


class Supervisor:
    """Forks the workers, forwards signals, restarts crashed workers, reaps them all.

    Args:
        count: how many workers.
        work: runs in a worker with its index (from 0); returns its exit status.
        stop_within: seconds a stopped worker may take (its drain and close grace).
    """

    def __init__(self, count: int, work: Callable[[int], int], stop_within: float) -> None:
        self.count = count
        self.work = work
        self.stop_within = stop_within
        self.children: dict[int, int] = {}  # pid -> worker index
        self.started: dict[int, float] = {}  # worker index -> monotonic start
        self.stopping = False
        self.kill_at: float | None = None
        self.failed = False
        self.hup_pending = False

    def spawn(self, index: int) -> None:
        parent = os.getpid()
        _flush_logs()  # nothing buffered may be written twice
        # Blocked across fork: the child must not run the parent's handlers (which would
        # signal its siblings) before it has its own.
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_MASK)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_MASK)
            raise
        if pid == 0:  # the worker: never returns into the parent's code
            status = 1
            try:
                self.children.clear()
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                # Noted until the worker's own handlers are in (proxy.process.runner replays
                # them): a reload or stop forwarded to a worker still starting must neither
                # end it by default action nor be lost (#16).
                startsignals.hold([signal.SIGHUP, WORKER_STOP])
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_MASK)
                _die_with_parent(parent)
                status = self.work(index)
            except BaseException:  # the worker must end here, whatever happened
                log.exception("worker %d failed", index + 1)
            finally:
                _flush_logs()
                os._exit(status)
        self.children[pid] = index
        self.started[index] = time.monotonic()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_MASK)

    def _forward(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # exited; reaped on the next poll
                pass

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            sdnotify.notify("STOPPING=1")
            self.kill_at = time.monotonic() + self.stop_within + KILL_AFTER
        self._forward(WORKER_STOP)  # a second one ends a drain at once, as in one process

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.hup_pending = True
        self._forward(signal.SIGHUP)

    def run(self, on_hup: Callable[[], None] | None) -> int:
        """Start the workers and wait for all of them; the parent's exit status.

        Args:
            on_hup: the parent's own SIGHUP work, after forwarding it (None: keep the
                default action, which ends the parent and so, by PR_SET_PDEATHSIG, the
                workers: a hangup of the terminal, proxy.process.reload.hangup_ends_process).
        """
        previous = {sig: signal.signal(sig, self._on_stop)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        if on_hup is not None:
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        try:
            startsignals.replay()  # a stop in the start-up window: no worker is started
            for index in range(self.count):
                if self.stopping:
                    break
                self.spawn(index)
            while self.children:
                sdnotify.watchdog()  # the parent is the main process systemd watches (#16)
                self._reap()
                if self.hup_pending and on_hup is not None:
                    # Here, not in the handler: it may have interrupted a logging call.
                    self.hup_pending = False
                    on_hup()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self.failed else 0

    def _reap(self) -> None:
        """Collect exited workers, restart crashed ones, kill ones past the deadline."""
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            self.children.clear()
            return
        if pid == 0:
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                log.warning("killing %d worker(s) still running after the stop",
                            len(self.children))
                self._forward(signal.SIGKILL)
                self.kill_at = None
            time.sleep(POLL)
            return
        index = self.children.pop(pid, None)
        if index is None:  # not a worker (a wrapped command is not allowed with workers)
            return
        self._exited(index, pid, status)

    def _exited(self, index: int, pid: int, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if self.stopping or code == 0:
            return  # stopped, or its --timeout/--idle-timeout ended it
        how = f"signal {-code}" if code < 0 else f"status {code}"
        if time.monotonic() - self.started[index] < RESTART_MIN:
            log.error("worker %d (pid %d) exited with %s at start; stopping", index + 1,
                      pid, how)
            self.failed = True
            self._on_stop(signal.SIGTERM, None)
            return
        log.warning("worker %d (pid %d) exited with %s; restarting it", index + 1, pid, how)
        self.spawn(index)


def supervise(count: int, work: Callable[[int], int], stop_within: float,
              on_hup: Callable[[], None] | None) -> int:
    """Run ``count`` workers until they all exit; see the module docstring."""
    if sys.platform == "win32":  # pragma: no cover - no fork
        raise OSError("--workers needs fork()")
    return Supervisor(count, work, stop_within).run(on_hup)
