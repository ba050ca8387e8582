"""``--daemon`` (spec §7.5) and ``--pid-file``: detach from the terminal, keep our fds.

As websockify: double fork with ``setsid`` (the command returns 0 at once), setgid/setuid
to the real ids, chdir to ``/``, stdin/stdout/stderr to ``/dev/null``, every descriptor
closed except the listening socket and the log files. Unlike websockify: umask 022
(websockify sets 0, making recordings world-writable, §13.15), and paths were made
absolute by ``cli`` before detaching (§13.14). Call it before any thread is started.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

UMASK = 0o022


def daemonize(keep_fds: Iterable[int]) -> None:
    """Become a daemon; returns in the grandchild only (the others ``_exit(0)``).

    Args:
        keep_fds: descriptors to leave open (listener, log files, our socketpairs).
            Standard descriptors among them are not redirected to ``/dev/null``.
    """
    keep = set(keep_fds)
    if os.fork() > 0:
        os._exit(0)  # the command returns at once (spec §7.5)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)  # the session leader exits: we can never reacquire a terminal
    os.umask(UMASK)
    os.chdir("/")
    os.setgid(os.getgid())
    os.setuid(os.getuid())
    _close_inherited(keep)
    _null_stdio(keep)


def _close_inherited(keep: set[int]) -> None:
    """Close descriptors a launcher passed us: the inheritable ones beyond stdio.

    Python opens everything non-inheritable (PEP 446), so an inheritable descriptor that
    is not in ``keep`` is not ours; closing our own would break the objects owning them.
    """
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                if os.get_inheritable(fd):
                    os.close(fd)


def _null_stdio(keep: set[int]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            if fd not in keep:
                os.dup2(null, fd)
    finally:
        if null > 2:
            os.close(null)


def write_pid_file(path: str) -> None:
    """Write our pid (and a newline) to ``path``, replacing it atomically."""
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "w", encoding="ascii") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(temp, path)


def remove_pid_file(path: str) -> None:
    """Remove ``path`` if it still names this process (a successor may have replaced it)."""
    try:
        with open(path, encoding="ascii") as f:
            if f.read().strip() != str(os.getpid()):
                return
        os.unlink(path)
    except (OSError, ValueError):
        pass
