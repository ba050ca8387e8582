"""``--daemon`` (spec §7.5) and ``--pid-file``: detach from the terminal, keep our fds.

As websockify: double fork with ``setsid`` (the command returns 0 at once), setgid/setuid
to the real ids, chdir to ``/``, stdin/stdout/stderr to ``/dev/null``, every descriptor
closed except the listening socket and the log files. Unlike websockify: umask 022
(websockify sets 0, making recordings world-writable, §13.15), and paths were made
absolute by ``cli`` before detaching (§13.14). Call it before any thread is started.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable

log = logging.getLogger("proxy.daemon")

UMASK = 0o022


def daemonize(keep_fds: Iterable[int], pid_file: str | None = None) -> bool:
    """Become a daemon; returns in the daemon only (the other processes ``_exit``).

    The intermediate process writes ``pid_file`` with the daemon's pid, and the command
    exits only after it did (#16 Operations 2: the daemon wrote it itself, sometimes
    after the command had returned). A pid file that cannot be written is reported on
    the command's stderr (exit status 1), and the daemon is told to give up.

    Args:
        keep_fds: descriptors to leave open (listener, log files, our socketpairs).
            Standard descriptors among them are not redirected to ``/dev/null``.
        pid_file: where to write the daemon's pid (an absolute path), or None.

    Returns:
        True to go on serving; False when the pid file failed (the caller closes the
        listener and exits; the command already reported the error).
    """
    keep = set(keep_fds)
    first = os.fork()
    if first > 0:
        os._exit(_exit_status(first))  # the command returns once the pid file exists
    os.setsid()
    go, wait = _pipe()
    second = os.fork()
    if second > 0:
        # The session leader exits: the daemon can never reacquire a terminal.
        os.close(wait)
        ok = _write_daemon_pid(pid_file, second)
        os.write(go, b"1" if ok else b"0")
        os._exit(0 if ok else 1)
    os.close(go)
    verdict = os.read(wait, 1)  # b"" if the intermediate process died: give up too
    os.close(wait)
    if verdict != b"1":
        return False
    os.umask(UMASK)
    os.chdir("/")
    os.setgid(os.getgid())
    os.setuid(os.getuid())
    _close_inherited(keep)
    _null_stdio(keep)
    return True


def _pipe() -> tuple[int, int]:
    """(write end, read end), non-inheritable (PEP 446), so no child of ours holds them."""
    read, write = os.pipe()
    return write, read


def _exit_status(pid: int) -> int:
    """Wait for ``pid`` (the intermediate process: it only writes a small file)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1


def _write_daemon_pid(path: str | None, pid: int) -> bool:
    """Write ``pid`` to ``path``; log the failure (still on the command's stderr)."""
    if path is None:
        return True
    try:
        write_pid_file(path, pid)
    except OSError as exc:
        log.error("%s", pid_file_error(path, exc))
        return False
    return True


def pid_file_error(path: str, exc: OSError) -> str:
    """The one line reporting a ``--pid-file`` that cannot be written (no traceback)."""
    return f"cannot write pid file '{path}': {exc.strerror or exc}"


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


def write_pid_file(path: str, pid: int | None = None) -> None:
    """Write ``pid`` (default ours) and a newline to ``path``, replacing it atomically.

    Raises:
        OSError: the file cannot be written (the temporary file is removed).
    """
    pid = os.getpid() if pid is None else pid
    temp = f"{path}.{pid}.tmp"
    try:
        with open(temp, "w", encoding="ascii") as f:
            f.write(f"{pid}\n")
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def remove_pid_file(path: str) -> None:
    """Remove ``path`` if it still names this process (a successor may have replaced it)."""
    try:
        with open(path, encoding="ascii") as f:
            if f.read().strip() != str(os.getpid()):
                return
        os.unlink(path)
    except (OSError, ValueError):
        pass
