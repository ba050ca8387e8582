"""Stop and reload signals in the start-up window: noted, then acted on once handled.

Between binding the listener and installing the running server's handlers
(``runner._run``, ``workers.Supervisor.run``) the process banners, forks for ``--daemon``,
writes the pid file and notifies systemd. A SIGTERM there used to take the default
action: the process died without "In exit" and, as a daemon, left its pid file behind
(a script that runs ``websockify -D --pid-file P`` and then ``kill $(cat P)`` hit it).
``hold`` installs a handler that only notes the signal, before the banner; the handlers
installed later ``replay`` what was noted by raising it again, so every signal has the
effect it has once running. The noting handler is inherited by the ``--daemon`` fork: a
stop sent to the command before it returned stops the daemon.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from types import FrameType
from typing import Any

_pending: list[int] = []
_previous: dict[int, Any] = {}


def _note(signum: int, frame: FrameType | None) -> None:
    if signum not in _pending:
        _pending.append(signum)


def hold(signals: Iterable[signal.Signals]) -> None:
    """Note ``signals`` instead of acting on them until ``replay``."""
    for sig in signals:
        _previous.setdefault(sig, signal.signal(sig, _note))


def replay() -> None:
    """Raise the noted signals again, now that their real handlers are installed."""
    pending = list(_pending)
    _pending.clear()
    for signum in pending:
        signal.raise_signal(signum)


def release() -> None:
    """Put back the handlers ``hold`` replaced (the command is returning)."""
    for sig, handler in _previous.items():
        signal.signal(sig, handler)
    _previous.clear()
    _pending.clear()
